// The appeal queue (#queue-view): the list, its pages, and live updates.

import { AppealQueue } from './queue.js';
import { LiveStream, MAX_BACKOFF, MIN_BACKOFF } from './live.js';
import { isTransient } from './grpcweb.js';
import { app, busy, clearErrorFrom, errorText, guard, pageSize, rpc, showError, SUPPORT_SVC } from './app.js';
import { badge, byId, h, idCell, setLabel, textOr, timeEl } from './dom.js';

let model = new AppealQueue();
let epoch = 0;                // bumped at sign-out: late replies are dropped
let live = null;
let retryTimer = null;        // the next try of a first load that failed on the way
let loaded = false;
let renderQueued = false;
const refetching = new Map(); // trade id -> {dirty}
const listeners = { anomalies: [], mistakes: [], trade: [] };

/** Other views subscribe to what the stream tells: on("anomalies"|"mistakes"|"trade", fn). */
export function on(kind, fn) {
  listeners[kind].push(fn);
}

function emit(kind, arg) {
  for (const fn of listeners[kind]) {
    try {
      fn(arg);
    } catch (e) {
      showError(e);
    }
  }
}

export function isLive() {
  return Boolean(live && live.running);
}

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  queueMicrotask(() => {
    renderQueued = false;
    render();
  });
}

function row(a) {
  const me = app.session ? app.session.sub : '';
  const open = h('button', { class: 'link open-trade', text: a.trade_id });
  const tr = h('tr', { data: { trade: a.trade_id, status: a.status }, tabindex: '0', class: 'clickable' },
    h('td', { class: 'mono' }, open),
    h('td', null, badge(a.status)),
    h('td', null, idCell(a.opened_by)),
    h('td', { class: 'reason' }, h('span', { class: 'clamp', title: a.reason || null, text: a.reason || '—' })),
    h('td', { class: 'num' }, h('span', { class: 'amount', text: a.coin_amount }), ' ', h('span', { class: 'asset', text: a.asset })),
    h('td', { class: 'num' }, textOr(a.fiat_amount)),
    h('td', { class: 'nowrap' }, timeEl(a.opened_at)),
    h('td', null, a.claimed_by ? idCell(a.claimed_by, me) : textOr('')));
  tr.addEventListener('click', () => app.go('trade', a.trade_id));
  tr.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && e.target === tr) app.go('trade', a.trade_id);
  });
  return tr;
}

/**
 * The rows on screen by trade id, each with the content it was built from:
 * an event rebuilds only the rows it changed, so the agent's focus and text
 * selection on the others survive the live updates.
 */
let shown = new Map(); // trade id -> {tr, key}

/** Puts `tbody`'s rows in the order of `trs`, moving only those out of place. */
function placeRows(tbody, trs) {
  const wanted = new Set(trs);
  for (const child of [...tbody.children]) {
    if (!wanted.has(child)) child.remove();
  }
  let at = tbody.firstElementChild;
  for (const tr of trs) {
    if (at === tr) at = at.nextElementSibling;
    else tbody.insertBefore(tr, at);
  }
}

export function render() {
  const tbody = byId('queue-body');
  if (!tbody) return;
  const me = app.session ? app.session.sub : '';
  // Where the focus is, if a rebuilt row holds it: it moves to the new row.
  const active = document.activeElement;
  const focusTr = active && tbody.contains(active) ? active.closest('tr') : null;
  const next = new Map();
  const trs = [];
  for (const a of model.list()) {
    const key = JSON.stringify([me, a]);
    let r = shown.get(a.trade_id);
    if (!r || r.key !== key) r = { tr: row(a), key };
    next.set(a.trade_id, r);
    trs.push(r.tr);
  }
  shown = next;
  placeRows(tbody, trs);
  if (focusTr && !focusTr.isConnected) {
    const again = shown.get(focusTr.dataset.trade);
    if (again) {
      const button = active.classList.contains('open-trade') ? again.tr.querySelector('.open-trade') : null;
      (button || again.tr).focus();
    }
  }
  byId('queue-empty').hidden = !loaded || model.size > 0;
  setLabel(byId('queue-count'), model.hasMore ? 'queue.countMore' : 'queue.count', { n: model.size });
  byId('queue-more').hidden = !model.hasMore;
  const more = byId('queue-new');
  more.hidden = model.moreCount === 0;
  more.dataset.count = String(model.moreCount);
  setLabel(more, 'queue.newMore', { n: model.moreCount });
}

/** Reads the first page afresh (sign-in, OUT_OF_RANGE); the stream resumes from its as_of_seq. */
export async function reload() {
  const mine = epoch;
  const fresh = new AppealQueue();
  const page = await rpc(`${SUPPORT_SVC}ListAppeals`, { page_size: await pageSize() });
  if (mine !== epoch) return;
  fresh.load(page);
  model = fresh;
  loaded = true;
  refetching.clear();
  render();
}

async function loadMore() {
  if (!model.hasMore) return;
  const current = model;
  const page = await rpc(`${SUPPORT_SVC}ListAppeals`, { page_size: await pageSize(), page_token: current.nextPageToken });
  if (current !== model) return;
  const { refetch } = model.load(page);
  for (const id of refetch) refetchAppeal(id);
  render();
}

/**
 * Re-reads one appeal; at most one request per trade in flight, repeated if
 * changed meanwhile. A read that fails on the way (server restarting,
 * network) is tried again, backing off as the stream does, until it lands
 * or the queue is reloaded: the stream resumes past the event that asked
 * for it, so nothing else would correct the row.
 */
export async function refetchAppeal(tradeId) {
  const current = model;
  const state = refetching.get(tradeId);
  if (state) {
    state.dirty = true;
    return;
  }
  const mine = { dirty: true };
  refetching.set(tradeId, mine);
  let pause = MIN_BACKOFF;
  try {
    while (mine.dirty) {
      mine.dirty = false;
      let appeal;
      try {
        appeal = await rpc(`${SUPPORT_SVC}GetAppeal`, { trade_id: tradeId });
      } catch (e) {
        if (e.codeName === 'NOT_FOUND') {
          current.remove(tradeId);
          break;
        }
        if (!isTransient(e) || current !== model) throw e;
        showError(e, 'queue');
        await new Promise((resolve) => { setTimeout(resolve, pause); });
        pause = Math.min(pause * 2, MAX_BACKOFF);
        if (current !== model) return;
        mine.dirty = true;
        continue;
      }
      clearErrorFrom('queue');
      if (current !== model) return;
      current.upsert(appeal);
      scheduleRender();
    }
  } catch (e) {
    showError(e);
  } finally {
    if (refetching.get(tradeId) === mine) refetching.delete(tradeId);
    scheduleRender();
  }
}

function setLive(state, error) {
  const el = byId('live');
  if (!el) return;
  el.hidden = false;
  el.dataset.state = state;
  setLabel(byId('live-text'), state === 'live' ? 'live.live' : 'live.reconnecting');
  el.title = error && error.codeName ? `${error.codeName}: ${errorText(error)}` : '';
}

function onEvent(ev) {
  const r = model.applyEvent(ev);
  if (r.action === 'ignore') return;
  const last = byId('last-event');
  if (last) {
    last.hidden = false;
    setLabel(last, 'live.last', { seq: r.seq });
  }
  switch (r.action) {
    case 'refetch': refetchAppeal(r.tradeId); break;
    case 'remove': scheduleRender(); break;
    case 'anomalies': emit('anomalies', ev); break;
    case 'mistakes': emit('mistakes', ev); break;
    default: break;
  }
  if (ev.trade_id) emit('trade', ev);
}

let starting = null;

async function startQueue(myEpoch) {
  loaded = false;
  model = new AppealQueue();
  render();
  await reload();
  if (myEpoch !== epoch) return;
  clearErrorFrom('queue');
  live = new LiveStream({
    resumeFrom: () => model.resumeFrom(),
    onEvent,
    onState: (state, e) => {
      setLive(state, e);
      // The stream is back: its refusal, if the banner still shows it, is over.
      if (state === 'live') clearErrorFrom('stream');
    },
    onRefused: (e) => showError(e, 'stream'),
    // Too far behind to resume: everything shown is read again.
    onOutOfRange: async () => {
      await reload();
      emit('anomalies', null);
      emit('mistakes', null);
      emit('trade', null);
    },
    onFatal: (e) => {
      setLive('reconnecting', e);
      showError(e);
    },
    onViewError: showError,
  });
  live.start();
}

/**
 * Signed in as support or support_viewer: load the queue and go live (once).
 * A first load that fails on the way (server restarting, network) is tried
 * again in the background, backing off as the stream does, until it lands or
 * the agent signs out: the queue does not stay empty and silent.
 */
export function ensureQueue(pause = MIN_BACKOFF) {
  if (live) return Promise.resolve();
  if (!starting) {
    const mine = epoch;
    clearTimeout(retryTimer);
    starting = startQueue(mine).catch((e) => {
      if (mine !== epoch || !isTransient(e)) throw e;
      setLive('reconnecting', e);
      showError(e, 'queue');
      retryTimer = setTimeout(() => {
        if (mine === epoch) ensureQueue(Math.min(pause * 2, MAX_BACKOFF)).catch(showError);
      }, pause);
    }).finally(() => {
      if (mine === epoch) starting = null;
    });
  }
  return starting;
}

/** Signing out: stop the stream and forget the queue. */
export function stopQueue() {
  epoch += 1;
  starting = null;
  clearTimeout(retryTimer);
  if (live) live.stop();
  live = null;
  const el = byId('live');
  if (el) el.hidden = true;
  const last = byId('last-event');
  if (last) last.hidden = true;
  model = new AppealQueue();
  loaded = false;
  refetching.clear();
  render();
}

export function initQueueView() {
  byId('queue-more').addEventListener('click', guard(() => busy(byId('queue-more'), loadMore)));
}

export const queueView = {
  section: 'queue-view',
  show() {
    render();
    return ensureQueue();
  },
  hide() {},
  model: () => model,
};
