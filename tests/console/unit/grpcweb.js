// ------------------------------------------------------------------ gRPC-Web frames

function trailerFrame(text) {
  const t = utf8(text);
  const f = gw.frame(t);
  f[0] = 0x80;
  return f;
}

function feed(decoder, chunks) {
  const out = [];
  for (const c of chunks) out.push(...decoder.push(c));
  return out;
}

const okHeaders = () => new Headers({ 'content-type': 'application/grpc-web+proto' });

await section('grpc-web frames', () => {
  eq(gw.frame(bytes(1, 2, 3)), bytes(0, 0, 0, 0, 3, 1, 2, 3), 'a request frame');
  const m1 = proto.encode(schema, 'otc.v1.Event', { seq: '1', trade_id: 'T-1' });
  const m2 = proto.encode(schema, 'otc.v1.Event', { seq: '2', text: 'x'.repeat(300) });
  const stream = concat(gw.frame(m1), gw.frame(m2), trailerFrame('grpc-status: 0\r\ngrpc-message: \r\n'));

  let d = new gw.GrpcWebDecoder(okHeaders());
  eq(feed(d, [stream]), [m1, m2], 'several frames in one chunk');
  eq(d.finish().code, 0, 'status OK from the trailers');

  d = new gw.GrpcWebDecoder(okHeaders());
  eq(feed(d, Array.from(stream, (b) => bytes(b))), [m1, m2], 'a stream fed one byte at a time');
  d.finish();

  let allSplits = true;
  for (let cut = 1; cut < stream.length; cut += 7) {
    const dd = new gw.GrpcWebDecoder(okHeaders());
    const got = feed(dd, [stream.slice(0, cut), stream.slice(cut)]);
    if (!same(got, [m1, m2])) allSplits = false;
    dd.finish();
  }
  ok(allSplits, 'messages split across chunks at any point');

  d = new gw.GrpcWebDecoder(okHeaders());
  feed(d, [gw.frame(m1).slice(0, 7)]);
  const cut = throws(() => d.finish(), /cut off|incomplete/i, 'a stream ending mid-frame is an error');
  ok(cut && cut.network, 'a cut-off stream counts as a network error');

  d = new gw.GrpcWebDecoder(okHeaders());
  feed(d, [gw.frame(m1)]);
  const none = throws(() => d.finish(), /without a gRPC status/, 'a stream without a status is an error');
  eq(none && none.codeName, 'INTERNAL', 'missing status is INTERNAL');
});

await section('grpc-web status', () => {
  const d = new gw.GrpcWebDecoder(okHeaders());
  feed(d, [trailerFrame('Grpc-Status: 9\r\ngrpc-message: trade%20T-1%20is%20%E5%B7%B2%E5%8F%96%E6%B6%88%3A%20100%25\r\n')]);
  const e = throws(() => d.finish(), /trade T-1/, 'an error status in the trailers');
  eq(e && [e.code, e.codeName, e.message], [9, 'FAILED_PRECONDITION', 'trade T-1 is 已取消: 100%'], 'trailers: code, name and percent-decoded message');

  const only = throws(() => new gw.GrpcWebDecoder(new Headers({
    'content-type': 'application/grpc-web+proto', 'grpc-status': '16', 'grpc-message': 'invalid%20token%3A%20expired',
  })), /invalid token/, 'a trailers-only error response');
  eq(only && [only.codeName, only.message], ['UNAUTHENTICATED', 'invalid token: expired'], 'trailers-only: status from the headers');

  const okOnly = new gw.GrpcWebDecoder({ 'content-type': 'application/grpc-web+proto', 'grpc-status': '0' });
  eq(okOnly.finish().code, 0, 'trailers-only OK');

  eq(gw.parseTrailers(utf8('grpc-status: 3\r\nGrpc-Message: field%20amount\r\nx-a: 1\r\n')),
    { 'grpc-status': '3', 'grpc-message': 'field%20amount', 'x-a': '1' }, 'trailers parse to lower-case keys');
  eq(gw.decodeGrpcMessage('bad%zz%E4%B8%AD'), 'bad%zz中', 'malformed escapes are kept as text');
  eq(gw.httpStatusError(503).codeName, 'UNAVAILABLE', 'HTTP 503 maps to UNAVAILABLE');
  eq(gw.httpStatusError(401).codeName, 'UNAUTHENTICATED', 'HTTP 401 maps to UNAUTHENTICATED');
  const e503 = gw.httpStatusError(503);
  eq([e503.message, i18n.t(e503.i18nKey, e503.args, 'en'), i18n.t(e503.i18nKey, e503.args, 'zh')],
    ['HTTP 503 from the server', 'HTTP 503 from the server', '服务器返回 HTTP 503'], 'this page\'s own message has a label in each language');
  eq(gw.codeName(7), 'PERMISSION_DENIED', 'code names');
  throws(() => new gw.GrpcWebDecoder({ 'content-type': 'text/html' }), /content type/, 'an HTML reply is refused');
});


// ------------------------------------------------------------------ a call that never hears back

await section('a unary call no answer reaches fails as DEADLINE_EXCEEDED, retried', async () => {
  if (typeof window === 'undefined') return;
  const real = window.fetch;
  const ListAppeals = '/otc.v1.SupportService/ListAppeals';
  const failure = async (p) => {
    try {
      await p;
      return null;
    } catch (e) {
      return e;
    }
  };
  let seen = null;
  // A connection that died without a word: the request never settles
  // until it is aborted.
  const silent = (url, init) => {
    if (!String(url).startsWith('/otc.')) return real(url, init);
    seen = init.signal;
    return new Promise((_, reject) => {
      const abort = () => reject(new DOMException('aborted', 'AbortError'));
      if (init.signal.aborted) abort();
      else init.signal.addEventListener('abort', abort);
    });
  };
  // A body that keeps coming: an empty answer and OK trailers, in six
  // pieces 100 ms apart.
  const trickling = (url, init) => {
    if (!String(url).startsWith('/otc.')) return real(url, init);
    const trailer = new TextEncoder().encode('grpc-status:0\r\n');
    const trailerFrame = new Uint8Array(5 + trailer.length);
    trailerFrame[0] = 0x80;
    new DataView(trailerFrame.buffer).setUint32(1, trailer.length, false);
    trailerFrame.set(trailer, 5);
    const bytes = new Uint8Array([...gw.frame(new Uint8Array(0)), ...trailerFrame]);
    const pieces = [0, 1, 2, 3, 4].map((i) => bytes.slice(i, i + 1)).concat([bytes.slice(5)]);
    const body = new ReadableStream({
      async pull(c) {
        await new Promise((r) => setTimeout(r, 100));
        // As fetch does: an aborted request's body fails.
        if (init.signal.aborted) {
          c.error(new DOMException('aborted', 'AbortError'));
          return;
        }
        const next = pieces.shift();
        if (next) c.enqueue(next);
        else c.close();
      },
    });
    return Promise.resolve(new Response(body, { status: 200, headers: { 'content-type': 'application/grpc-web+proto' } }));
  };
  try {
    window.fetch = silent;
    const started = Date.now();
    const err = await failure(gw.call(ListAppeals, {}, { token: 't', deadlineMs: 200 }));
    ok(err && err.codeName === 'DEADLINE_EXCEEDED', `DEADLINE_EXCEEDED, got ${err && err.codeName}`);
    ok(gw.isTransient(err), 'retried like no answer at all');
    ok(seen && seen.aborted, 'the request itself was aborted');
    ok(Date.now() - started < 5000, 'at its deadline, not later');
    // Not cut, however long it takes in all, under a 250 ms deadline.
    window.fetch = trickling;
    const slow = await failure(gw.call(ListAppeals, {}, { token: 't', deadlineMs: 250 }));
    ok(slow === null, `a slow body that keeps coming is read whole, got ${slow && slow.codeName}: ${slow && slow.message}`);
    // The caller's own abort stays an abort.
    window.fetch = silent;
    const mine = new AbortController();
    const p = gw.call(ListAppeals, {}, { token: 't', signal: mine.signal });
    mine.abort();
    const abortErr = await failure(p);
    ok(abortErr && abortErr.aborted && abortErr.codeName === 'CANCELLED', `the caller's abort, got ${abortErr && abortErr.codeName}`);
    eq(gw.CALL_DEADLINE_MS > 30000, true, 'past the server\'s own 30 s');
    // No network: this page's own words, in the agent's language.
    window.fetch = () => Promise.reject(new TypeError('Failed to fetch'));
    const down = await failure(gw.call(ListAppeals, {}, { token: 't' }));
    eq([down.codeName, down.message, i18n.t(down.i18nKey, down.args, 'zh')],
      ['UNAVAILABLE', 'network error: Failed to fetch', '网络错误：Failed to fetch'], 'a failed fetch is labelled');
    app.showError(down);
    eq(document.getElementById('error-text').textContent, `UNAVAILABLE: ${i18n.t('net.failed', { detail: 'Failed to fetch' })}`,
      'the banner shows the label');
    const banner = document.getElementById('error-text').lastChild;
    eq(banner.dataset && banner.dataset.i18n, 'net.failed', 'relabelled when the language changes');
    app.clearError();
  } finally {
    window.fetch = real;
  }
});

