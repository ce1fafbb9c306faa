// The daily statement (#statement-view) and the back office (#admin-view):
// deposits, withdrawals and merchant registration (role admin).

import { ADMIN_SVC, busy, confirmDialog, guard, mutate, rpc, SUPPORT_SVC } from './app.js';
import { byId, clear, fieldList, h, label } from './dom.js';
import { statementCsv, todayUtc } from './format.js';

// ------------------------------------------------------------------ statement

const STATEMENT_FIELDS = [
  ['statement.opening', 'opening'],
  ['statement.deposits', 'deposits'],
  ['statement.withdrawals', 'withdrawals'],
  ['statement.released', 'released_to_buyers'],
  ['statement.returned', 'returned_to_sellers'],
  ['statement.closing', 'closing'],
  ['statement.balances', 'balances'],
];

async function loadStatement() {
  const asset = byId('statement-asset').value.trim();
  const date = byId('statement-date').value.trim();
  const out = clear(byId('statement'));
  const s = await rpc(`${SUPPORT_SVC}GetStatement`, { asset, date });
  const balanced = h('div', {
    id: 'statement-balanced',
    class: ['balance-check', s.balanced ? 'ok' : 'bad'],
    data: { balanced: s.balanced ? 'true' : 'false' },
  }, label(s.balanced ? 'statement.balanced' : 'statement.notBalanced'));
  dropCsv();
  csvUrl = URL.createObjectURL(new Blob([statementCsv(s)], { type: 'text/csv;charset=utf-8' }));
  const csv = h('a', {
    id: 'statement-csv',
    class: 'button-link',
    href: csvUrl,
    download: `statement-${s.asset}-${s.date}.csv`,
    rel: 'noopener',
  }, label('statement.csv'));
  out.append(
    h('h3', null, h('span', { class: 'mono', text: s.asset }), ' · ', h('span', { class: 'mono', text: s.date })),
    balanced,
    fieldList(STATEMENT_FIELDS.map(([key, field]) => [key, h('span', { class: 'amount', text: s[field] }), field]), 'statement-fields'),
    csv,
  );
}

let csvUrl = null;   // the shown statement's CSV (a Blob), revoked when replaced

function dropCsv() {
  if (csvUrl) URL.revokeObjectURL(csvUrl);
  csvUrl = null;
}

export const statementView = {
  section: 'statement-view',
  show() {},
  hide() {},
  reset() {
    dropCsv();
    clear(byId('statement'));
    byId('statement-asset').value = 'EB';
    byId('statement-date').value = todayUtc();
  },
};

// ------------------------------------------------------------------ admin

function transferRequest() {
  return {
    user_id: byId('admin-user').value.trim(),
    asset: byId('admin-asset').value.trim(),
    amount: byId('admin-amount').value.trim(),
    external_ref: byId('admin-ref').value.trim(),
  };
}

function showResult(...nodes) {
  const out = clear(byId('admin-result'));
  out.hidden = false;
  out.append(...nodes);
}

function hideResult() {
  clear(byId('admin-result')).hidden = true;
}

async function transfer(method, doneKey) {
  hideResult();
  const req = transferRequest();
  // Money moves at once and for good: say what first, as resolving does.
  const sure = await confirmDialog(method === 'Deposit' ? 'confirm.depositTitle' : 'confirm.withdrawTitle', [
    ['admin.user', req.user_id],
    ['admin.asset', req.asset],
    ['admin.amount', req.amount],
    ['admin.ref', req.external_ref],
  ]);
  if (!sure) return;
  const r = await mutate(`${ADMIN_SVC}${method}`, req);
  const b = r.balance || { asset: req.asset, available: '', escrowed: '' };
  // A reference seen before (the same transfer, sent again) changes nothing:
  // the reply's receipt is empty (first_seq past last_seq). Say so, rather
  // than "Deposited", so nobody credits the user a second time by hand.
  const replay = r.receipt && BigInt(r.receipt.first_seq) > BigInt(r.receipt.last_seq);
  if (!replay) {
    byId('admin-amount').value = '';
    byId('admin-ref').value = '';
  }
  const outcome = replay
    ? label('admin.alreadyRecorded', { ref: req.external_ref })
    : label(doneKey, { amount: req.amount, asset: req.asset, user: req.user_id });
  outcome.dataset.outcome = replay ? 'already-recorded' : 'done';
  showResult(
    outcome,
    h('div', { class: 'balance-line' },
      label('admin.balance'), ' ',
      h('span', { class: 'mono', text: b.asset }), ' · ',
      label('balance.available'), ' ', h('span', { class: 'amount', data: { field: 'available' }, text: b.available }), ' · ',
      label('balance.escrowed'), ' ', h('span', { class: 'amount', data: { field: 'escrowed' }, text: b.escrowed })),
  );
}

async function registerMerchant() {
  hideResult();
  const user = byId('merchant-user').value.trim();
  await mutate(`${ADMIN_SVC}RegisterMerchant`, { user_id: user });
  showResult(label('admin.merchantRegistered', { user }));
}

export const adminView = {
  section: 'admin-view',
  show() {},
  hide() {},
  reset() {
    for (const id of ['admin-user', 'admin-amount', 'admin-ref', 'merchant-user']) byId(id).value = '';
    byId('admin-asset').value = 'EB';
    hideResult();
  },
};

export function initOfficeViews() {
  const load = byId('statement-load');
  load.addEventListener('click', guard(() => busy(load, loadStatement)));
  for (const id of ['statement-asset', 'statement-date']) {
    byId(id).addEventListener('keydown', (e) => {
      if (e.key === 'Enter') load.click();
    });
  }
  const dep = byId('admin-deposit');
  const wd = byId('admin-withdraw');
  const reg = byId('register-merchant');
  dep.addEventListener('click', guard(() => busy(dep, () => transfer('Deposit', 'admin.deposited'))));
  wd.addEventListener('click', guard(() => busy(wd, () => transfer('Withdraw', 'admin.withdrawn'))));
  reg.addEventListener('click', guard(() => busy(reg, registerMerchant)));
  statementView.reset();
}
