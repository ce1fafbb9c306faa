// ------------------------------------------------------------------ the queue model

const ts = (s, n = 0) => ({ seconds: String(s), nanos: n });
const appeal = (id, s, extra = {}) => ({ trade_id: id, status: 'APPEAL_STATUS_OPEN', opened_at: ts(s), claimed_by: '', ...extra });
const ids = (q) => q.list().map((a) => a.trade_id);

await section('queue ordering and loading', () => {
  const q = new AppealQueue();
  q.load({ appeals: [appeal('T-10', 100), appeal('T-9', 100), appeal('T-2', 50), appeal('T-3', 100, { opened_at: ts(99, 5) })], next_page_token: '', as_of_seq: '40' });
  eq(ids(q), ['T-2', 'T-3', 'T-9', 'T-10'], 'oldest first, then by trade number');
  eq(q.resumeFrom(), '40', 'lastSeq comes from as_of_seq of the first page');
  eq(compareTradeIds('T-9', 'T-10'), -1, 'T-9 sorts before T-10');
  const q2 = new AppealQueue();
  q2.load({ appeals: [appeal('T-1', 1)], next_page_token: 'T-1', as_of_seq: '5' });
  q2.load({ appeals: [appeal('T-2', 2)], next_page_token: '', as_of_seq: '9' });
  eq(q2.resumeFrom(), '5', 'later pages do not move lastSeq');
  eq(ids(q2), ['T-1', 'T-2'], 'pages append');
});

await section('queue events', () => {
  const q = new AppealQueue();
  q.load({ appeals: [appeal('T-1', 10), appeal('T-2', 20)], next_page_token: '', as_of_seq: '100' });
  eq(q.applyEvent({ seq: '100', type: 'EVENT_TYPE_APPEAL_CLAIMED', trade_id: 'T-1' }).action, 'ignore', 'an event at as_of_seq is already in the list');
  const r = q.applyEvent({ seq: '101', type: 'EVENT_TYPE_APPEAL_CLAIMED', trade_id: 'T-1' });
  eq([r.action, r.tradeId], ['refetch', 'T-1'], 'claimed: refetch the appeal');
  eq(q.resumeFrom(), '101', 'lastSeq advances');
  // Reconnect from resumeFrom(): the server may repeat events; they are ignored.
  eq(q.applyEvent({ seq: '101', type: 'EVENT_TYPE_APPEAL_CLAIMED', trade_id: 'T-1' }).action, 'ignore', 'a repeated event after a reconnect is ignored');
  eq(q.applyEvent({ seq: '99', type: 'EVENT_TYPE_APPEAL_RESOLVED', trade_id: 'T-1' }).action, 'ignore', 'an old event is ignored');
  eq(ids(q), ['T-1', 'T-2'], 'ignored events change nothing');

  eq(q.upsert(appeal('T-1', 10, { status: 'APPEAL_STATUS_CLAIMED', claimed_by: 'agent-1' })), 'updated', 'the claimed appeal is updated');
  eq([q.get('T-1').status, q.get('T-1').claimed_by, ids(q)], ['APPEAL_STATUS_CLAIMED', 'agent-1', ['T-1', 'T-2']], 'claim shown, order kept');

  for (const type of ['EVENT_TYPE_APPEAL_OPENED', 'EVENT_TYPE_APPEAL_UNCLAIMED', 'EVENT_TYPE_EVIDENCE_ADDED']) {
    eq(q.applyEvent({ seq: String(Number(q.resumeFrom()) + 1), type, trade_id: 'T-2' }).action, 'refetch', `${type} refetches`);
  }
  eq(q.applyEvent({ seq: '110', type: 'EVENT_TYPE_TRADE_TRANSITIONED', trade_id: 'T-3', from_state: 'PAID', state: 'APPEALED' }).action, 'refetch', 'a trade entering APPEALED refetches');
  eq(q.applyEvent({ seq: '111', type: 'EVENT_TYPE_TRADE_TRANSITIONED', trade_id: 'T-4', from_state: 'AWAITING_PAYMENT', state: 'PAID' }).action, 'none', 'other transitions do nothing');

  const res = q.applyEvent({ seq: '112', type: 'EVENT_TYPE_APPEAL_RESOLVED', trade_id: 'T-1', state: 'RELEASE' });
  eq([res.action, ids(q)], ['remove', ['T-2']], 'a resolved appeal is removed');
  eq(q.upsert(appeal('T-1', 10)), 'ignored', 'a late read of a resolved appeal does not bring it back');
  eq(q.applyEvent({ seq: '113', type: 'EVENT_TYPE_APPEAL_SETTLED', trade_id: 'T-2' }).action, 'remove', 'a settled appeal is removed');
  eq(q.size, 0, 'queue empty');

  q.upsert(appeal('T-5', 30));
  eq(q.upsert(appeal('T-5', 30, { status: 'APPEAL_STATUS_CLOSED' })), 'removed', 'a closed appeal is removed on upsert');
  eq(q.upsert(appeal('T-6', 40)), 'inserted', 'without more pages a new appeal is inserted');

  eq(q.applyEvent({ seq: '120', type: 'EVENT_TYPE_PAYMENT_ANOMALY', anomaly_id: 'A-1' }).action, 'anomalies', 'payment anomaly');
  eq(q.applyEvent({ seq: '121', type: 'EVENT_TYPE_ANOMALY_RESOLVED', anomaly_id: 'A-1' }).action, 'anomalies', 'anomaly resolved');
  eq(q.applyEvent({ seq: '122', type: 'EVENT_TYPE_RECON_MISTAKE', mistake_id: 'R-1' }).action, 'mistakes', 'recon mistake');
  eq(q.applyEvent({ seq: '123', type: 'EVENT_TYPE_MISTAKE_HANDLED', mistake_id: 'R-1' }).action, 'mistakes', 'mistake handled');
  eq(q.applyEvent({ seq: '124', type: 'EVENT_TYPE_BILL_IMPORTED' }).action, 'mistakes', 'bill imported');
  eq(q.resumeFrom(), '124', 'resumeFrom is the last applied seq');
});

await section('queue with more pages', () => {
  const q = new AppealQueue();
  q.load({ appeals: [appeal('T-1', 10), appeal('T-2', 20)], next_page_token: 'T-2', as_of_seq: '9007199254740993' });
  eq(q.applyEvent({ seq: '9007199254740993', type: 'EVENT_TYPE_APPEAL_OPENED', trade_id: 'T-50' }).action, 'ignore', 'sequence numbers above 2^53 compare exactly');
  eq(q.applyEvent({ seq: '9007199254740994', type: 'EVENT_TYPE_APPEAL_OPENED', trade_id: 'T-50' }).action, 'refetch', 'new appeal: refetch');
  eq(q.resumeFrom(), '9007199254740994', 'resumeFrom above 2^53');
  eq(q.upsert(appeal('T-50', 99)), 'counted', 'a new appeal past the loaded pages is counted');
  eq(q.upsert(appeal('T-50', 99)), 'counted', 'counted once');
  eq([ids(q), q.moreCount], [['T-1', 'T-2'], 1], 'not inserted; one more');
  eq(q.upsert(appeal('T-2', 20, { status: 'APPEAL_STATUS_CLAIMED' })), 'updated', 'loaded ones still update');
  const { refetch } = q.load({ appeals: [appeal('T-3', 30), appeal('T-50', 99)], next_page_token: '', as_of_seq: '1' });
  eq([ids(q), q.moreCount, q.hasMore], [['T-1', 'T-2', 'T-3', 'T-50'], 0, false], 'the next page brings it in');
  eq(refetch, ['T-50'], 'appeals known from events are re-read after a page load');
  eq(q.resumeFrom(), '9007199254740994', 'loading a page keeps lastSeq');
});

