// Payment anomalies (#anomalies-view) and reconciliation mistakes
// (#mistakes-view): paged lists, refreshed live by the appeal-queue stream;
// closing either needs a note (role support only).

import { app, boundNote, busy, canAct, confirmDialog, guard, localError, mutate, pageSize, rpc, showError, SUPPORT_SVC } from './app.js';
import { badge, byId, clear, h, idCell, label, table, textOr, timeEl } from './dom.js';
import { isTransient } from './grpcweb.js';
import { MAX_BACKOFF, MIN_BACKOFF } from './live.js';
import { on } from './view-queue.js';

/** A list read page by page, re-read whole (as many pages as were open) when it changes. */
class PagedList {
  constructor({ method, itemsKey, request, render, moreId, emptyId }) {
    Object.assign(this, { method, itemsKey, request, render, moreId, emptyId });
    this.items = [];
    this.next = '';
    this.pages = 0;
    this.visible = false;
    this.gen = 0;
    this.resets = 0;        // bumped at sign-out: a retry of before stops
    this.timer = null;
    this.notes = new Map(); // id -> note being typed, kept across re-renders
  }

  async reload() {
    const gen = ++this.gen;
    const wanted = Math.max(1, this.pages);
    const items = [];
    let token = '';
    let pages = 0;
    do {
      const page = await rpc(this.method, { ...this.request(), page_size: await pageSize(), page_token: token });
      if (gen !== this.gen) return;
      items.push(...page[this.itemsKey]);
      token = page.next_page_token;
      pages += 1;
    } while (token && pages < wanted);
    this.items = items;
    this.next = token;
    this.pages = pages;
    this.draw();
  }

  async more() {
    if (!this.next) return;
    const gen = this.gen;
    const page = await rpc(this.method, { ...this.request(), page_size: await pageSize(), page_token: this.next });
    if (gen !== this.gen) return;
    this.items.push(...page[this.itemsKey]);
    this.next = page.next_page_token;
    this.pages += 1;
    this.draw();
  }

  draw() {
    // Keep the focus (and caret) in a note being typed across the re-render.
    const active = document.activeElement;
    const row = active && active.classList && active.classList.contains('note-input') ? active.closest('tr') : null;
    const keep = row ? { id: row.dataset.anomaly || row.dataset.mistake, at: active.selectionStart } : null;
    this.render(this.items);
    if (keep) {
      for (const input of document.querySelectorAll('tr .note-input')) {
        const tr = input.closest('tr');
        if ((tr.dataset.anomaly || tr.dataset.mistake) === keep.id) {
          input.focus();
          input.setSelectionRange(keep.at, keep.at);
        }
      }
    }
    byId(this.moreId).hidden = !this.next;
    byId(this.emptyId).hidden = this.items.length > 0;
  }

  /**
   * The stream says it changed: re-read soon if shown (else it is read when
   * shown). A re-read that fails on the way is tried again, backing off as
   * the stream does: no event will ask for it twice.
   */
  changed(delay = 250, pause = MIN_BACKOFF) {
    if (!this.visible) return;
    clearTimeout(this.timer);
    const resets = this.resets;
    this.timer = setTimeout(() => this.reload().catch((e) => {
      showError(e);
      if (resets === this.resets && isTransient(e)) this.changed(pause, Math.min(pause * 2, MAX_BACKOFF));
    }), delay);
  }

  reset() {
    this.gen += 1;
    this.resets += 1;
    this.items = [];
    this.next = '';
    this.pages = 0;
    this.notes.clear();
    clearTimeout(this.timer);
  }
}

function noteInput(list, id, cls) {
  const input = boundNote(h('input', { type: 'text', class: ['note-input', cls], 'placeholder-i18n': 'list.notePlaceholder' }));
  input.value = list.notes.get(id) || '';
  input.addEventListener('input', () => {
    list.notes.set(id, input.value);
    input.classList.remove('invalid');
  });
  return input;
}

function requireNote(input) {
  const text = input.value.trim();
  if (!text) {
    input.classList.add('invalid');
    input.focus();
    throw localError('err.noteRequired');
  }
  return text;
}

function tradeLink(id) {
  if (!id) return textOr('');
  if (app.session && (app.session.role === 'support' || app.session.role === 'support_viewer')) {
    const b = h('button', { class: 'link open-trade mono', text: id });
    b.addEventListener('click', () => app.go('trade', id));
    return b;
  }
  return h('span', { class: 'mono', text: id });
}

// ------------------------------------------------------------------ anomalies

const anomalies = new PagedList({
  method: `${SUPPORT_SVC}ListAnomalies`,
  itemsKey: 'anomalies',
  request: () => ({ include_resolved: byId('include-resolved').checked }),
  moreId: 'anomalies-more',
  emptyId: 'anomalies-empty',
  render: renderAnomalies,
});

function renderAnomalies(items) {
  const act = canAct();
  const heads = ['col.kind', 'col.trade', 'col.reference', 'col.channel', 'col.txn', 'col.amount', 'col.expected',
    'col.fiat', 'col.receivedAt', 'col.resolved', 'col.by', 'col.note'];
  if (act) heads.push('col.action');
  const { table: tbl, tbody } = table('anomalies', heads);
  for (const a of items) {
    const p = a.payment || {};
    const tr = h('tr', { data: { anomaly: a.id, resolved: a.resolved ? 'true' : 'false' } },
      h('td', null, badge(a.kind), h('div', { class: 'mono small', text: a.id })),
      h('td', null, tradeLink(a.trade_id)),
      h('td', { class: 'mono', text: a.reference || '—' }),
      h('td', { text: p.channel || '—' }),
      h('td', { class: 'mono', text: p.txn_id || '—' }),
      h('td', { class: 'num', text: p.amount || '—' }),
      h('td', { class: 'num', text: a.expected_amount || '—' }),
      h('td', { text: a.fiat || '—' }),
      h('td', { class: 'nowrap' }, timeEl(p.received_at)),
      h('td', { class: 'nowrap' }, badge(a.resolved ? 'RESOLVED' : 'UNRESOLVED'), a.resolved ? h('div', null, timeEl(a.resolved_at)) : null),
      h('td', null, a.resolved_by ? idCell(a.resolved_by, app.session.sub) : textOr('')),
      h('td', { class: 'prewrap', text: a.note || '—' }));
    if (act) {
      const cell = h('td', { class: 'row-actions' });
      if (!a.resolved) {
        const input = noteInput(anomalies, a.id, 'anomaly-note');
        const button = h('button', { class: 'anomaly-resolve primary', i18n: 'action.resolveAnomaly' });
        button.addEventListener('click', guard(() => busy(button, async () => {
          const note = requireNote(input);
          await mutate(`${SUPPORT_SVC}ResolveAnomaly`, { anomaly_id: a.id, note });
          anomalies.notes.delete(a.id);
          await anomalies.reload();
        })));
        cell.append(input, button);
      }
      tr.appendChild(cell);
    }
    tbody.appendChild(tr);
  }
  clear(byId('anomalies-table')).appendChild(tbl);
}

// ------------------------------------------------------------------ reconciliation mistakes

const mistakes = new PagedList({
  method: `${SUPPORT_SVC}ListReconMistakes`,
  itemsKey: 'mistakes',
  request: () => ({ include_handled: byId('include-handled').checked }),
  moreId: 'mistakes-more',
  emptyId: 'mistakes-empty',
  render: renderMistakes,
});

async function applyMissed(m, input) {
  const note = input.value.trim();
  const ok = await confirmDialog('confirm.applyTitle', [
    ['confirm.mistake', m.id],
    ['col.channel', m.channel],
    ['col.date', m.date],
    ['col.txn', m.txn_id],
    ['col.reference', m.reference],
    ['col.bill', m.bill_amount],
    ['confirm.note', note],
  ], 'action.applyMissed');
  if (!ok) return;
  await mutate(`${SUPPORT_SVC}ApplyMissedPayment`, { mistake_id: m.id, note });
  mistakes.notes.delete(m.id);
  await mistakes.reload();
}

function renderMistakes(items) {
  const act = canAct();
  const heads = ['col.kind', 'col.channel', 'col.date', 'col.txn', 'col.reference', 'col.ours', 'col.bill',
    'col.billStatus', 'col.at', 'col.handled', 'col.by', 'col.note'];
  if (act) heads.push('col.action');
  const { table: tbl, tbody } = table('mistakes', heads);
  for (const m of items) {
    const tr = h('tr', { data: { mistake: m.id, handled: m.handled ? 'true' : 'false', kind: m.kind } },
      h('td', null, badge(m.kind), h('div', { class: 'mono small', text: m.id })),
      h('td', { text: m.channel || '—' }),
      h('td', { class: 'nowrap', text: m.date || '—' }),
      h('td', { class: 'mono', text: m.txn_id || '—' }),
      h('td', { class: 'mono' }, m.reference || '—',
        m.bill_reference ? h('div', { class: 'small bill-reference' }, label('mistake.billReference'), ' ', m.bill_reference) : null),
      h('td', { class: 'num', text: m.ours_amount || '—' }),
      h('td', { class: 'num', text: m.bill_amount || '—' }),
      h('td', null, m.bill_status ? badge(m.bill_status) : textOr('')),
      h('td', { class: 'nowrap' }, timeEl(m.at)),
      h('td', { class: 'nowrap' }, badge(m.handled ? 'HANDLED' : 'UNHANDLED'), m.handled ? h('div', null, timeEl(m.handled_at)) : null),
      h('td', null, m.handled_by ? idCell(m.handled_by, app.session.sub) : textOr('')),
      h('td', { class: 'prewrap', text: m.note || '—' }));
    if (act) {
      const cell = h('td', { class: 'row-actions' });
      if (!m.handled) {
        const input = noteInput(mistakes, m.id, 'mistake-note');
        const close = h('button', { class: 'mistake-close', i18n: 'action.closeMistake' });
        close.addEventListener('click', guard(() => busy(close, async () => {
          const note = requireNote(input);
          await mutate(`${SUPPORT_SVC}CloseReconMistake`, { mistake_id: m.id, note });
          mistakes.notes.delete(m.id);
          await mistakes.reload();
        })));
        cell.append(input, close);
        if (m.kind === 'MISSING_HERE') {
          const apply = h('button', { class: 'mistake-apply primary', i18n: 'action.applyMissed' });
          apply.addEventListener('click', guard(() => busy(apply, () => applyMissed(m, input))));
          cell.append(apply);
        }
      }
      tr.appendChild(cell);
    }
    tbody.appendChild(tr);
  }
  clear(byId('mistakes-table')).appendChild(tbl);
}

// ------------------------------------------------------------------ wiring

function listView(list, section) {
  return {
    section,
    show() {
      list.visible = true;
      return list.reload();
    },
    hide() {
      list.visible = false;
    },
    reset() {
      list.reset();
      const anomaliesList = section === 'anomalies-view';
      clear(byId(anomaliesList ? 'anomalies-table' : 'mistakes-table'));
      byId(anomaliesList ? 'include-resolved' : 'include-handled').checked = false;
      byId(anomaliesList ? 'anomalies-more' : 'mistakes-more').hidden = true;
      byId(anomaliesList ? 'anomalies-empty' : 'mistakes-empty').hidden = true;
    },
  };
}

export const anomaliesView = listView(anomalies, 'anomalies-view');
export const mistakesView = listView(mistakes, 'mistakes-view');

export function initListViews() {
  byId('include-resolved').addEventListener('change', guard(() => { anomalies.pages = 0; return anomalies.reload(); }));
  byId('include-handled').addEventListener('change', guard(() => { mistakes.pages = 0; return mistakes.reload(); }));
  byId('anomalies-more').addEventListener('click', guard(() => busy(byId('anomalies-more'), () => anomalies.more())));
  byId('mistakes-more').addEventListener('click', guard(() => busy(byId('mistakes-more'), () => mistakes.more())));
  byId('anomalies-refresh').addEventListener('click', guard(() => busy(byId('anomalies-refresh'), () => anomalies.reload())));
  byId('mistakes-refresh').addEventListener('click', guard(() => busy(byId('mistakes-refresh'), () => mistakes.reload())));
  on('anomalies', () => anomalies.changed());
  on('mistakes', () => mistakes.changed());
}
