// The trade view (#trade-view): a trade with its appeal, both parties'
// records, the seller's receiving method, verified payments, the timeline,
// evidence and chat; claim, hand back and resolve for role support.

import {
  app, boundNote, busy, canAct, clearErrorFrom, confirmDialog, guard, localError, mutate, pageSize, rpc, showError,
  SUPPORT_SVC,
} from './app.js';
import { attachmentNode, releaseAttachments } from './attachments.js';
import { badge, byId, clear, durationEl, fieldList, h, idCell, label, setLabel, textOr, timeEl } from './dom.js';
import { showInvisible } from './format.js';
import { isTransient } from './grpcweb.js';
import { on, refetchAppeal } from './view-queue.js';

const CHAT_POLL_MS = 3000;

let current = null;    // {id, gen, trade, appeal, chatSeq, chatCount, timer, polling, refreshTimer, retryLoad, loading, stale}
let generation = 0;
let noteDraft = '';

const OPEN_STATUSES = new Set(['APPEAL_STATUS_OPEN', 'APPEAL_STATUS_CLAIMED']);

function isCurrent(gen) {
  return current !== null && current.gen === gen;
}

function yesNo(v) {
  return label(v ? 'common.yes' : 'common.no');
}

function party(uid) {
  if (!current || !current.trade || !uid) return null;
  if (uid === current.trade.seller_id) return h('span', { class: 'badge b-seller', i18n: 'party.seller' });
  if (uid === current.trade.buyer_id) return h('span', { class: 'badge b-buyer', i18n: 'party.buyer' });
  return null;
}

function who(uid) {
  return h('span', { class: 'person' }, party(uid), idCell(uid, app.session ? app.session.sub : ''));
}

function section(key, id, ...content) {
  return h('section', { class: 'card', id: id ? `${id}-card` : null }, h('h3', { i18n: key }), ...content);
}

// ------------------------------------------------------------------ rendering

function tradeFields(tr) {
  const pairs = [
    ['field.tradeId', h('span', { class: 'mono', text: tr.id }), 'id'],
    ['field.state', badge(tr.state), 'state'],
    ['field.asset', tr.asset, 'asset'],
    ['field.coinAmount', h('span', { class: 'amount', text: tr.coin_amount }), 'coin_amount'],
    ['field.fiat', tr.fiat, 'fiat'],
    ['field.fiatAmount', h('span', { class: 'amount', text: tr.fiat_amount }), 'fiat_amount'],
    ['field.price', h('span', { class: 'amount', text: tr.price }), 'price'],
    ['field.seller', who(tr.seller_id), 'seller_id'],
    ['field.buyer', who(tr.buyer_id), 'buyer_id'],
    ['field.listing', tr.listing_id || tr.buy_order_id, 'listing_id'],
    ['field.createdAt', timeEl(tr.created_at), 'created_at'],
    ['field.payBy', timeEl(tr.pay_by), 'pay_by'],
    ['field.paidAt', timeEl(tr.paid_at), 'paid_at'],
    ['field.appealFrom', timeEl(tr.appeal_from), 'appeal_from'],
    ['field.paymentReference', h('span', { class: 'mono', text: tr.payment_reference || '—' }), 'payment_reference'],
    ['field.releaseOnVerified', yesNo(tr.release_on_verified_payment), 'release_on_verified_payment'],
  ];
  if (tr.cancel_reason) pairs.push(['field.cancelReason', tr.cancel_reason, 'cancel_reason']);
  if (tr.fast_match_origin) {
    pairs.push(['field.fastMatch', `${tr.fast_match_origin} #${tr.fast_match_attempt}`, 'fast_match_origin']);
  }
  if (tr.reference_price) {
    pairs.push(['field.referencePrice', h('span', { class: 'amount', text: tr.reference_price }), 'reference_price']);
    pairs.push(['field.premiumBps', String(tr.premium_bps), 'premium_bps']);
    pairs.push(['field.referenceAt', timeEl(tr.reference_at), 'reference_at']);
    pairs.push(['field.referenceSource', tr.reference_source, 'reference_source']);
  }
  return fieldList(pairs);
}

function appealFields(a) {
  if (!a) return h('p', { class: 'muted', i18n: 'trade.noAppeal' });
  return fieldList([
    ['field.status', badge(a.status), 'status'],
    ['field.openedBy', idCell(a.opened_by), 'opened_by'],
    ['field.reason', h('span', { class: 'prewrap', text: a.reason || '—' }), 'reason'],
    ['field.openedAt', timeEl(a.opened_at), 'opened_at'],
    ['field.claimedBy', a.claimed_by ? idCell(a.claimed_by, app.session ? app.session.sub : '') : '—', 'claimed_by'],
    ['field.outcome', h('span', { class: 'prewrap', text: a.outcome || '—' }), 'outcome'],
  ]);
}

function record(partyKey, uid, r) {
  const rec = r || { completed_30d: 0, completion_rate_30d: '', median_release_secs: '0' };
  return h('div', { class: `record record-${partyKey}`, data: { party: partyKey } },
    h('h4', null, h('span', { class: `badge b-${partyKey}`, i18n: `party.${partyKey}` }), ' ', idCell(uid)),
    fieldList([
      ['record.completed', String(rec.completed_30d), 'completed_30d'],
      ['record.rate', rec.completion_rate_30d || '—', 'completion_rate_30d'],
      ['record.median', durationEl(rec.median_release_secs), 'median_release_secs'],
    ], 'compact'));
}

function methodFields(m) {
  if (!m) return h('p', { class: 'muted', i18n: 'common.none' });
  // Where the fiat was to go, exactly as typed: nothing reordered or hidden.
  const pairs = [
    ['method.kind', badge(m.kind), 'kind'],
    ['method.holder', showInvisible(m.holder), 'holder'],
  ];
  if (m.bank) pairs.push(['method.bank', showInvisible(m.bank), 'bank']);
  pairs.push(['method.account', h('span', { class: 'mono', text: showInvisible(m.account) || '—' }), 'account']);
  if (m.channel) pairs.push(['method.channel', m.channel, 'channel']);
  if (m.provider) pairs.push(['method.provider', m.provider, 'provider']);
  return fieldList(pairs);
}

function paymentsTable(payments) {
  if (!payments.length) return h('p', { class: 'muted', i18n: 'trade.noPayments' });
  return h('table', { class: 'grid', id: 'payments' },
    h('thead', null, h('tr', null, ['col.channel', 'col.txn', 'col.amount', 'col.paidAt', 'col.receivedAt']
      .map((k) => h('th', { i18n: k })))),
    h('tbody', null, payments.map((p) => h('tr', null,
      h('td', { text: p.channel || '—' }),
      h('td', { class: 'mono', text: p.txn_id || '—' }),
      h('td', { class: 'num', text: p.amount || '—' }),
      h('td', { class: 'nowrap' }, timeEl(p.paid_at)),
      h('td', { class: 'nowrap' }, timeEl(p.received_at))))));
}

function timelineList(entries) {
  return h('ol', { id: 'timeline', class: 'timeline' }, entries.map((e) => h('li', null,
    h('span', { class: 'tl-time' }, timeEl(e.at)),
    h('span', { class: 'tl-actor' }, idCell(e.actor)),
    h('span', { class: 'tl-what', text: e.what }))));
}

function evidenceList(tradeId, evidence) {
  const ul = h('ul', { id: 'evidence', class: 'evidence-list' });
  if (!evidence.length) ul.appendChild(h('li', { class: 'muted', i18n: 'trade.noEvidence' }));
  for (const e of evidence) {
    ul.appendChild(h('li', { class: 'evidence', data: { evidence: e.id } },
      h('div', { class: 'meta' }, h('span', { class: 'mono', text: e.id }), ' ', who(e.by_user_id), ' ', timeEl(e.at)),
      h('div', { class: 'evidence-text prewrap', text: e.description || '—' }),
      e.attachment ? attachmentNode(tradeId, e.id, e.attachment) : null));
  }
  return ul;
}

function chatItem(tradeId, m) {
  const attId = (m.attachment && m.attachment.id) || `chat-${m.seq}`;
  return h('li', { class: 'chat-msg', data: { seq: m.seq } },
    h('div', { class: 'meta' }, h('span', { class: 'chat-author' }, who(m.author_id)), ' ', timeEl(m.at)),
    h('span', { class: 'chat-text prewrap', text: m.text }),
    m.attachment ? attachmentNode(tradeId, attId, m.attachment) : null);
}

// ------------------------------------------------------------------ actions (support only)

function claimControls(a) {
  const box = byId('claim-box');
  if (!box) return;
  clear(box);
  if (!a || !OPEN_STATUSES.has(a.status)) return;
  if (heldByOther(a)) {
    // The holder must hand it back first; the server would refuse.
    box.appendChild(h('p', { class: 'muted', i18n: 'resolve.heldByOther' }));
    return;
  }
  if (a.status === 'APPEAL_STATUS_OPEN') {
    const b = h('button', { id: 'claim', class: 'primary', i18n: 'action.claim' });
    b.addEventListener('click', guard(() => busy(b, () => act('ClaimAppeal'))));
    box.appendChild(b);
  } else {
    const b = h('button', { id: 'unclaim', i18n: 'action.unclaim' });
    b.addEventListener('click', guard(() => busy(b, () => act('UnclaimAppeal'))));
    box.appendChild(b);
  }
}

function resolveControls() {
  const note = boundNote(h('textarea', { id: 'note', rows: '3', required: true, 'placeholder-i18n': 'resolve.notePlaceholder' }));
  note.value = noteDraft;
  note.addEventListener('input', () => {
    noteDraft = note.value;
    note.classList.remove('invalid');
  });
  const release = h('button', { id: 'resolve-release', class: 'primary', i18n: 'action.resolveRelease' });
  const refund = h('button', { id: 'resolve-refund', class: 'danger', i18n: 'action.resolveRefund' });
  release.addEventListener('click', guard(() => busy(release, () => resolve('RESOLUTION_RELEASE'))));
  refund.addEventListener('click', guard(() => busy(refund, () => resolve('RESOLUTION_REFUND'))));
  return h('div', { id: 'resolve-box', class: 'resolve' },
    h('label', { for: 'note', class: 'label', i18n: 'resolve.note' }), note,
    h('div', { class: 'buttons' }, release, refund));
}

/** Claimed by another agent (only the holder may hand back or resolve). */
function heldByOther(a) {
  return Boolean(a && a.status === 'APPEAL_STATUS_CLAIMED' && a.claimed_by && a.claimed_by !== app.session.sub);
}

function updateActions() {
  const actions = byId('actions');
  if (!actions || !canAct()) return;
  const a = current.appeal;
  claimControls(a);
  const open = a && OPEN_STATUSES.has(a.status) && !heldByOther(a);
  const existing = byId('resolve-box');
  if (open && !existing) actions.appendChild(resolveControls());
  if (!open && existing) existing.remove();
}

async function act(method) {
  const id = current.id;
  await mutate(`${SUPPORT_SVC}${method}`, { trade_id: id });
  await refresh();
  refetchAppeal(id);
}

async function resolve(resolution) {
  const note = byId('note');
  const text = note.value.trim();
  if (!text) {
    note.classList.add('invalid');
    note.focus();
    throw localError('err.noteRequired');
  }
  const tr = current.trade;
  const id = current.id;
  const ok = await confirmDialog('confirm.resolveTitle', [
    ['confirm.trade', id],
    ['confirm.resolution', label(resolution === 'RESOLUTION_RELEASE' ? 'resolve.releaseMeans' : 'resolve.refundMeans')],
    ['confirm.coin', `${tr.coin_amount} ${tr.asset}`],
    ['confirm.fiat', `${tr.fiat_amount} ${tr.fiat}`],
    ['confirm.note', text],
  ], resolution === 'RESOLUTION_RELEASE' ? 'action.resolveRelease' : 'action.resolveRefund');
  if (!ok || !current || current.id !== id) return;
  const gen = current.gen;
  await mutate(`${SUPPORT_SVC}ResolveAppeal`, { trade_id: id, resolution, note: text });
  // A slow answer may land after the agent opened another trade: its note
  // draft is theirs, not this resolution's (the queue row updates anyway).
  if (!isCurrent(gen)) {
    refetchAppeal(id);
    return;
  }
  noteDraft = '';
  const box = byId('note');
  if (box) box.value = '';
  await refresh();
  refetchAppeal(id);
}

// ------------------------------------------------------------------ loading

/** The view's cards, built once per trade; refreshes replace what is inside them. */
function skeleton() {
  const hold = (id) => h('div', { class: 'card-body', id: `${id}-body` }, h('p', { class: 'muted', i18n: 'common.loading' }));
  const holders = {
    trade: hold('trade'), appeal: hold('appeal'), records: hold('records'), method: hold('method'),
    payments: hold('payments'), timeline: hold('timeline'), evidence: hold('evidence'),
  };
  const appealCard = section('trade.sectionAppeal', 'appeal', holders.appeal);
  if (canAct()) {
    appealCard.appendChild(h('div', { id: 'actions', class: 'actions' }, h('div', { id: 'claim-box', class: 'buttons' })));
  }
  const chatCard = section('trade.sectionChat', 'chat',
    h('p', { id: 'chat-empty', class: 'muted', i18n: 'trade.noChat' }),
    h('ul', { id: 'chat', class: 'chat' }));
  clear(byId('trade-body')).append(
    section('trade.sectionTrade', 'trade', holders.trade),
    appealCard,
    section('trade.sectionRecords', 'records', holders.records),
    section('trade.sectionMethod', 'method', holders.method),
    section('trade.sectionPayments', 'payments', holders.payments),
    section('trade.sectionTimeline', 'timeline', holders.timeline),
    section('trade.sectionEvidence', 'evidence', holders.evidence),
    chatCard,
  );
  return holders;
}

function fill(holder, node) {
  clear(holder).appendChild(node);
}

function renderAll() {
  const { trade: tr, appeal: a, holders } = current;
  setLabel(byId('trade-title'), 'trade.title', { id: current.id });
  const state = clear(byId('trade-state'));
  if (!tr) return;
  state.appendChild(badge(tr.state));
  fill(holders.trade, tradeFields(tr));
  fill(holders.appeal, appealFields(a));
  fill(holders.records, h('div', { id: 'records', class: 'records' },
    record('seller', a ? a.seller_id : tr.seller_id, a ? a.seller_record : null),
    record('buyer', a ? a.buyer_id : tr.buyer_id, a ? a.buyer_record : null)));
  fill(holders.method, h('div', { id: 'seller-method' }, methodFields(tr.seller_method)));
  fill(holders.payments, paymentsTable(tr.payments));
  fill(holders.timeline, timelineList(tr.timeline));
  fill(holders.evidence, evidenceList(current.id, a ? a.evidence : []));
  if (canAct()) updateActions();
}

/** Re-reads the trade and its appeal (after an action or an event). */
export async function refresh() {
  if (!current) return;
  const { gen, id } = current;
  // Overlapping refreshes of one trade: only the latest one started may
  // render, so an older answer never overwrites a newer one.
  current.refreshSeq = (current.refreshSeq || 0) + 1;
  const seq = current.refreshSeq;
  current.loading += 1;
  let trade;
  let appeal;
  try {
    [trade, appeal] = await Promise.all([
      rpc(`${SUPPORT_SVC}GetTrade`, { trade_id: id }),
      rpc(`${SUPPORT_SVC}GetAppeal`, { trade_id: id }).catch((e) => {
        if (e.codeName === 'NOT_FOUND') return null;
        throw e;
      }),
    ]);
  } catch (e) {
    // Never loaded, and failed on the way: the poll tries again.
    if (isCurrent(gen) && !current.trade) current.retryLoad = isTransient(e);
    throw e;
  } finally {
    if (isCurrent(gen)) current.loading -= 1;
  }
  // Until the trade has loaded once, any answer beats none (a slow server
  // would otherwise drop every answer for the newer try started meanwhile).
  if (!isCurrent(gen) || (current.refreshSeq !== seq && current.trade)) return;
  const first = !current.trade;
  current.trade = trade;
  current.appeal = appeal;
  renderAll();
  if (first) clearErrorFrom('trade');
}

async function pollChat() {
  if (!current || current.polling) return;
  const { gen, id } = current;
  current.polling = true;
  try {
    const size = await pageSize();
    for (;;) {
      const page = await rpc(`${SUPPORT_SVC}ListChat`, { trade_id: id, after_seq: current.chatSeq, page_size: size });
      if (!isCurrent(gen)) return;
      const list = byId('chat');
      for (const m of page.messages) {
        if (BigInt(m.seq) <= BigInt(current.chatSeq)) continue;
        current.chatSeq = m.seq;
        current.chatCount += 1;
        list.appendChild(chatItem(id, m));
      }
      byId('chat-empty').hidden = current.chatCount > 0;
      if (page.messages.length < size) break;
    }
  } finally {
    if (isCurrent(gen)) current.polling = false;
  }
}

function stop() {
  if (current) {
    clearInterval(current.timer);
    clearTimeout(current.refreshTimer);
  }
  current = null;
  releaseAttachments();
}

/** Opens the trade view for `tradeId`. */
export async function openTrade(tradeId) {
  stop();
  generation += 1;
  noteDraft = '';
  current = { id: tradeId, gen: generation, trade: null, appeal: null, chatSeq: '0', chatCount: 0, timer: null, polling: false, refreshTimer: null, holders: null, retryLoad: false, loading: 0, stale: false };
  setLabel(byId('trade-title'), 'trade.title', { id: tradeId });
  clear(byId('trade-state'));
  current.holders = skeleton();
  const gen = current.gen;
  // The poll runs from the start, so a first load lost to a passing outage
  // is tried again (and chat still arrives) without reopening the trade.
  current.timer = setInterval(() => {
    tick().catch((e) => {
      if (isCurrent(gen)) showError(e, 'trade');
    });
  }, CHAT_POLL_MS);
  try {
    await refresh();
  } catch (e) {
    // A trade left meanwhile says nothing; one failed on the way is retried.
    if (!isCurrent(gen)) return;
    if (current.retryLoad) {
      showError(e, 'trade');
      return;
    }
    throw e;
  }
  if (!isCurrent(gen)) return;
  await pollChat();
}

/** One poll: the trade itself until it has loaded once (if that failed on the way), then chat. */
async function tick() {
  if (!current) return;
  if (!current.trade) {
    // Tried again after a failure on the way, never beside a load still out.
    if (!current.retryLoad || current.loading > 0) return;
    const { gen } = current;
    await refresh();
    if (!isCurrent(gen) || !current.trade) return;
  } else if (current.stale && current.loading === 0) {
    // A re-read an event asked for failed on the way: again, until it
    // lands, chat polling on meanwhile.
    const { gen } = current;
    current.stale = false;
    let failed = null;
    try {
      await refresh();
    } catch (e) {
      if (!isCurrent(gen)) return;
      if (isTransient(e)) current.stale = true;
      failed = e;
    }
    if (!isCurrent(gen)) return;
    await pollChat();
    if (failed) throw failed;
    clearErrorFrom('trade');
    return;
  }
  await pollChat();
  // Polling works again: a failure it showed is over.
  clearErrorFrom('trade');
}

function onTradeEvent(ev) {
  // An event of this trade, or null: events may have been missed (re-read).
  if (!current || (ev && ev.trade_id !== current.id)) return;
  clearTimeout(current.refreshTimer);
  const { gen } = current;
  current.refreshTimer = setTimeout(() => refresh().catch((e) => {
    // Left meanwhile: nothing to say. Failed on the way: the poll reads it
    // again (no event says it twice).
    if (!isCurrent(gen)) return;
    if (isTransient(e)) current.stale = true;
    showError(e, 'trade');
  }), 250);
}

export function initTradeView() {
  byId('back').addEventListener('click', () => app.go('queue'));
  byId('trade-refresh').addEventListener('click', guard(() => busy(byId('trade-refresh'), async () => {
    await refresh();
    await pollChat();
  })));
  on('trade', onTradeEvent);
}

export const tradeView = {
  section: 'trade-view',
  show(tradeId) {
    return openTrade(tradeId);
  },
  hide() {
    stop();
  },
  currentId: () => (current ? current.id : null),
};
