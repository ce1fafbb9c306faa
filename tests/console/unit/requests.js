// ------------------------------------------------------------------ request ids

await section('request ids', () => {
  let n = 0;
  const ids = new RequestIds(() => `id-${++n}`);
  const M = '/otc.v1.SupportService/ResolveAppeal';
  const p = { trade_id: 'T-1', resolution: 'RESOLUTION_RELEASE', note: 'ok' };
  const first = ids.idFor(M, p);
  ids.settle(M, p, new gw.GrpcError(14, 'network error', { network: true }));
  eq(ids.idFor(M, p), first, 'a retry after a network error reuses the request id');
  eq(ids.idFor(M, { ...p, note: 'other' }) !== first, true, 'other parameters are another action');
  ids.settle(M, p, new gw.GrpcError(9, 'wrong state'));
  ok(ids.idFor(M, p) !== first, 'a definite refusal forgets the id');
  const second = ids.idFor(M, p);
  ids.settle(M, p, null);
  ok(ids.idFor(M, p) !== second, 'a success forgets the id: the next action gets a fresh one');
  eq(actionKey(M, { b: 1, a: 2, request_id: 'x' }), actionKey(M, { a: 2, b: 1 }), 'action identity ignores key order and request_id');
  // An unsure try's id is reused only for a retry soon after: the same click
  // minutes later (claim, hand back, claim) is a new action.
  let clock = 0;
  const timed = new RequestIds(() => `t-${++n}`, () => clock, 60_000);
  const C = '/otc.v1.SupportService/ClaimAppeal';
  const claim = { trade_id: 'T-7' };
  const unsure = timed.idFor(C, claim);
  timed.settle(C, claim, new gw.GrpcError(14, 'network error', { network: true }));
  clock = 59_999;
  eq(timed.idFor(C, claim), unsure, 'a retry within the window reuses the id');
  timed.settle(C, claim, new gw.GrpcError(14, 'network error', { network: true }));
  clock = 60_000 + 59_999 + 1;
  ok(timed.idFor(C, claim) !== unsure, 'after the window the same action gets a fresh id');
  // Claim unsure, hand back done, claim again at once: a new claim, not a
  // replay of the first one's stored reply (which would claim nothing).
  const U = '/otc.v1.SupportService/UnclaimAppeal';
  const subject = { trade_id: 'T-8' };
  const lost = timed.idFor(C, subject);
  timed.settle(C, subject, new gw.GrpcError(14, 'network error', { network: true }));
  const other = { trade_id: 'T-9' };
  const otherLost = timed.idFor(C, other);
  timed.settle(C, other, new gw.GrpcError(14, 'network error', { network: true }));
  timed.idFor(U, subject);
  timed.settle(U, subject, new gw.GrpcError(9, 'not claimed'));
  eq(timed.idFor(C, subject), lost, 'a refused action on the trade keeps the unsure claim retryable');
  timed.settle(C, subject, new gw.GrpcError(14, 'network error', { network: true }));
  timed.idFor(U, subject);
  timed.settle(U, subject, null);
  ok(timed.idFor(C, subject) !== lost, 'after another action on the trade succeeds, claiming again is a new action');
  eq(timed.idFor(C, other), otherLost, 'an unsure claim on another trade is still retried with its id');
});

await section('which failed reads are tried again', () => {
  const e = (code, name) => {
    const err = new gw.GrpcError(code, 'x');
    eq(err.codeName, name, `code ${code} is ${name}`);
    return err;
  };
  ok(gw.isTransient(new gw.GrpcError(14, 'network error', { network: true })), 'no answer at all');
  for (const status of [429, 502, 503, 504]) ok(gw.isTransient(gw.httpStatusError(status)), `HTTP ${status} may pass`);
  for (const status of [400, 403, 404]) ok(!gw.isTransient(gw.httpStatusError(status)), `HTTP ${status} stays`);
  for (const [code, name] of [[14, 'UNAVAILABLE'], [4, 'DEADLINE_EXCEEDED'], [8, 'RESOURCE_EXHAUSTED']]) {
    ok(gw.isTransient(e(code, name)), `${name} may pass`);
  }
  for (const [code, name] of [[13, 'INTERNAL'], [2, 'UNKNOWN'], [5, 'NOT_FOUND'], [7, 'PERMISSION_DENIED']]) {
    ok(!gw.isTransient(e(code, name)), `${name} fails the same way again`);
  }
});

await section('a background load clears only the banner it showed', () => {
  const { showError, clearError, clearErrorFrom } = app;
  const box = document.getElementById('error');
  const shown = () => (box.hidden ? null : box.dataset.code);
  const unavailable = new gw.GrpcError(14, 'network error', { network: true });
  showError(new gw.GrpcError(9, 'not claimed by you'));
  clearErrorFrom('queue');
  eq(shown(), 'FAILED_PRECONDITION', 'an action\'s failure stays when a load recovers');
  showError(unavailable, 'queue');
  clearErrorFrom('trade');
  eq(shown(), 'UNAVAILABLE', 'another load\'s recovery leaves it');
  clearErrorFrom('queue');
  eq(shown(), null, 'the load that showed it clears it');
  showError(unavailable, 'queue');
  showError(new gw.GrpcError(5, 'no such trade'));
  clearErrorFrom('queue');
  eq(shown(), 'NOT_FOUND', 'a failure shown over the load\'s stays');
  clearError();
});

await section('attachment file names', () => {
  eq(safeFileName('statement.pdf', 'application/pdf', 'A-1'), 'statement.pdf', 'a fitting name is kept');
  eq(safeFileName('Scan.JPEG', 'image/jpeg', 'A-1'), 'Scan.JPEG', 'either JPEG extension, any case');
  eq(safeFileName('invoice\u202Efdp.exe', 'application/pdf', 'A-1'), 'invoicefdp.exe.pdf',
    'a right-to-left override is dropped and the checked type decides the extension');
  eq(safeFileName('a\u2066b\u200Fc\u061C.png', 'image/png', 'A-1'), 'abc.png', 'isolates and marks are dropped');
  eq(safeFileName('..\\..\\evil.png', 'image/png', 'A-1'), 'evil.png', 'only the base name');
  eq(safeFileName('receipt', 'image/webp', 'A-1'), 'receipt.webp', 'a name without extension gets the type\'s');
  eq(safeFileName('\u202E\u0007', 'image/png', 'A-1'), 'A-1.png', 'nothing left: the attachment id');
});

await section('strings keep a leading byte-order mark', () => {
  const schema = { messages: { 'x.S': [{ no: 1, name: 's', type: 'string' }] }, enums: {} };
  const bytes = proto.encode(schema, 'x.S', { s: '\uFEFFhello' });
  eq(proto.decode(schema, 'x.S', bytes).s, '\uFEFFhello', 'U+FEFF at the start is the user\'s text');
});

