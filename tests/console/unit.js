// Unit tests of the web console's logic, run inside the console page by the
// Rust browser test as the body of an async function:
//   (async () => { const fixtures = arguments[0]; <this file> })()
// `fixtures` = {tradeB64, trade}: a prost-encoded otc.v1.Trade and the same
// trade as JSON. Returns {passed, failures}.

const proto = await import('/js/proto.js');
const gw = await import('/js/grpcweb.js');
const { AppealQueue, compareTradeIds } = await import('/js/queue.js');
const i18n = await import('/js/i18n.js');
const fmt = await import('/js/format.js');
const { RequestIds, actionKey } = await import('/js/requests.js');
const { safeFileName } = await import('/js/attachments.js');
const app = await import('/js/app.js');

let passed = 0;
const failures = [];

function show(v) {
  try {
    return JSON.stringify(v, (k, x) => {
      if (typeof x === 'bigint') return `${x}n`;
      if (x instanceof Uint8Array) return `bytes[${Array.from(x).join(',')}]`;
      return x;
    });
  } catch {
    return String(v);
  }
}

function same(a, b) {
  if (a === b) return true;
  if (typeof a === 'number' && typeof b === 'number' && Number.isNaN(a) && Number.isNaN(b)) return true;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && a.length === b.length && a.every((x, i) => x === b[i]);
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]));
  }
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a).sort();
    const kb = Object.keys(b).sort();
    return same(ka, kb) && ka.every((k) => same(a[k], b[k]));
  }
  return false;
}

function ok(cond, msg) {
  if (cond) passed += 1;
  else failures.push(msg);
}

function eq(actual, expected, msg) {
  if (same(actual, expected)) passed += 1;
  else failures.push(`${msg}: got ${show(actual)}, want ${show(expected)}`);
}

function throws(fn, pattern, msg) {
  try {
    fn();
  } catch (e) {
    if (!pattern || pattern.test(String(e && e.message))) passed += 1;
    else failures.push(`${msg}: threw ${show(String(e && e.message))}, want ${pattern}`);
    return e;
  }
  failures.push(`${msg}: did not throw`);
  return null;
}

async function section(name, fn) {
  try {
    await fn();
  } catch (e) {
    failures.push(`${name}: unexpected exception ${e && e.stack ? e.stack : e}`);
  }
}

function concat(...parts) {
  const n = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const bytes = (...b) => Uint8Array.from(b);
const utf8 = (s) => new TextEncoder().encode(s);

// ------------------------------------------------------------------ codec, inline schema

const S = {
  messages: {
    't.All': [
      { no: 1, name: 'd', type: 'double' }, { no: 2, name: 'f', type: 'float' },
      { no: 3, name: 'i32', type: 'int32' }, { no: 4, name: 'i64', type: 'int64' },
      { no: 5, name: 'u32', type: 'uint32' }, { no: 6, name: 'u64', type: 'uint64' },
      { no: 7, name: 's32', type: 'sint32' }, { no: 8, name: 's64', type: 'sint64' },
      { no: 9, name: 'fx32', type: 'fixed32' }, { no: 10, name: 'fx64', type: 'fixed64' },
      { no: 11, name: 'sf32', type: 'sfixed32' }, { no: 12, name: 'sf64', type: 'sfixed64' },
      { no: 13, name: 'b', type: 'bool' }, { no: 14, name: 's', type: 'string' },
      { no: 15, name: 'by', type: 'bytes' }, { no: 16, name: 'e', type: 'enum', ref: 't.Color' },
      { no: 17, name: 'm', type: 'message', ref: 't.Inner' },
      { no: 18, name: 'ri', type: 'int32', repeated: true },
      { no: 19, name: 'rs', type: 'string', repeated: true },
      { no: 20, name: 'rm', type: 'message', ref: 't.Inner', repeated: true },
      { no: 21, name: 're', type: 'enum', ref: 't.Color', repeated: true },
      { no: 22, name: 'r64', type: 'uint64', repeated: true },
      { no: 23, name: 'rd', type: 'double', repeated: true },
    ],
    't.Inner': [
      { no: 1, name: 'x', type: 'string' }, { no: 2, name: 'n', type: 'int64' },
      { no: 3, name: 'inner', type: 'message', ref: 't.Inner' },
    ],
  },
  enums: { 't.Color': { 0: 'COLOR_UNSPECIFIED', 1: 'COLOR_RED', 2: 'COLOR_GREEN' } },
  methods: {},
};

const DEFAULTS = {
  d: 0, f: 0, i32: 0, i64: '0', u32: 0, u64: '0', s32: 0, s64: '0', fx32: 0, fx64: '0', sf32: 0, sf64: '0',
  b: false, s: '', by: new Uint8Array(0), e: 'COLOR_UNSPECIFIED', m: null, ri: [], rs: [], rm: [], re: [], r64: [], rd: [],
};

await section('codec defaults', () => {
  eq(proto.decode(S, 't.All', new Uint8Array(0)), DEFAULTS, 'empty input decodes to proto3 defaults');
  eq(proto.encode(S, 't.All', {}).length, 0, 'an empty object encodes to nothing');
  eq(proto.encode(S, 't.All', DEFAULTS).length, 0, 'default values are skipped (proto3)');
  eq(proto.encode(S, 't.All', { i64: 0n, u64: '0', e: 'COLOR_UNSPECIFIED', by: new Uint8Array(0) }).length, 0,
    '0n, "0", the zero enum and empty bytes are defaults');
});

await section('codec round trip of every scalar', () => {
  const value = {
    d: -3.25, f: 1.5, i32: -123, i64: '-9223372036854775808', u32: 4294967295, u64: '18446744073709551615',
    s32: -2147483648, s64: '-9007199254740993', fx32: 4294967295, fx64: '18446744073709551615',
    sf32: -5, sf64: '-9223372036854775807', b: true, s: '中文 😀 café \u0000 end', by: bytes(0, 255, 1, 128),
    e: 'COLOR_GREEN', m: { x: 'a', n: '9007199254740993', inner: { x: 'deep', n: '0', inner: null } },
    ri: [1, -1, 300, -2147483648, 2147483647], rs: ['a', '', '中'], rm: [{ x: '1', n: '0', inner: null }, { x: '2', n: '-2', inner: null }],
    re: ['COLOR_RED', 'COLOR_GREEN'], r64: ['1', '18446744073709551615', '9007199254740993'], rd: [0.5, -0, 1e300],
  };
  const got = proto.decode(S, 't.All', proto.encode(S, 't.All', value));
  eq(got, value, 'every scalar type survives a round trip');
  eq(got.i64, '-9223372036854775808', 'int64 minimum is exact');
  eq(got.u64, '18446744073709551615', 'uint64 maximum is exact');
  eq(got.m.n, '9007199254740993', 'a 64-bit value above 2^53 is exact');
  eq(typeof got.i32, 'number', 'int32 decodes to a number');
  eq(typeof got.i64, 'string', 'int64 decodes to a decimal string');
  const viaBig = proto.decode(S, 't.All', proto.encode(S, 't.All', { i64: 2n ** 62n, u64: 42, s64: -1n, fx64: '7' }));
  eq([viaBig.i64, viaBig.u64, viaBig.s64, viaBig.fx64], ['4611686018427387904', '42', '-1', '7'], '64-bit ints accept BigInt, numbers and strings');
});

await section('codec wire bytes', () => {
  eq(proto.encode(S, 't.Inner', { n: 150 }), bytes(0x10, 0x96, 0x01), 'varint 150');
  eq(proto.encode(S, 't.Inner', { x: 'testing' }), concat(bytes(0x0a, 0x07), utf8('testing')), 'a string field');
  eq(proto.encode(S, 't.All', { i32: -1 }), bytes(0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), 'negative int32 is a 10-byte varint');
  eq(proto.encode(S, 't.All', { i64: '-2' }), bytes(0x20, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), 'negative int64 is a 10-byte varint');
  eq(proto.encode(S, 't.All', { s32: -1 }), bytes(0x38, 0x01), 'sint32 -1 zigzags to 1');
  eq(proto.encode(S, 't.All', { s64: '1' }), bytes(0x40, 0x02), 'sint64 1 zigzags to 2');
  eq(proto.encode(S, 't.All', { ri: [1, 2, 3] }), bytes(0x92, 0x01, 0x03, 1, 2, 3), 'repeated int32 is packed');
  eq(proto.encode(S, 't.All', { s: '中' }), bytes(0x72, 0x03, 0xe4, 0xb8, 0xad), 'strings are UTF-8');
  eq(proto.encode(S, 't.All', { s: '😀' }), bytes(0x72, 0x04, 0xf0, 0x9f, 0x98, 0x80), 'an emoji is 4 UTF-8 bytes');
  eq(proto.encode(S, 't.All', { fx32: 1 }), bytes(0x4d, 1, 0, 0, 0), 'fixed32 is little-endian');
  eq(proto.encode(S, 't.All', { e: 2 }), bytes(0x80, 0x01, 0x02), 'an enum by number');
  eq(proto.encode(S, 't.All', { e: 'COLOR_GREEN' }), bytes(0x80, 0x01, 0x02), 'an enum by name');
  eq(proto.encode(S, 't.All', { m: {} }), bytes(0x8a, 0x01, 0x00), 'an empty but present message is written');
});

await section('codec packed and unpacked', () => {
  // ri unpacked: tag 18 wire 0 = 0x90 0x01.
  eq(proto.decode(S, 't.All', bytes(0x90, 0x01, 0x05, 0x90, 0x01, 0x07)).ri, [5, 7], 'unpacked repeated int32');
  eq(proto.decode(S, 't.All', bytes(0x92, 0x01, 0x02, 0x05, 0x06, 0x90, 0x01, 0x07)).ri, [5, 6, 7], 'packed then unpacked append');
  const neg = concat(bytes(0x92, 0x01, 0x0b), bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), bytes(0x01));
  eq(proto.decode(S, 't.All', neg).ri, [-1, 1], 'packed negative int32');
  eq(proto.decode(S, 't.All', bytes(0xa8, 0x01, 0x01, 0xa8, 0x01, 0x09)).re, ['COLOR_RED', 9], 'unpacked enums; an unknown number stays a number');
  const packed64 = proto.encode(S, 't.All', { r64: ['1', '18446744073709551615'] });
  eq(packed64[0], 0xb2, 'repeated uint64 is packed (wire type 2)');
  eq(proto.decode(S, 't.All', bytes(0xb0, 0x01, 0x01, 0xb0, 0x01, 0x02)).r64, ['1', '2'], 'unpacked repeated uint64');
  eq(proto.decode(S, 't.All', proto.encode(S, 't.All', { rs: ['x', 'y'] })).rs, ['x', 'y'], 'repeated strings');
});

await section('codec unknown fields and nesting', () => {
  const unknown = concat(
    bytes(0x98, 0x06, 0x96, 0x01), // field 99 varint
    bytes(0x91, 0x06, 1, 2, 3, 4, 5, 6, 7, 8), // field 98 fixed64
    bytes(0x8a, 0x06, 0x03, 9, 9, 9), // field 97 length-delimited
    bytes(0x85, 0x06, 1, 2, 3, 4), // field 96 fixed32
    bytes(0x72, 0x02), utf8('ok'), // s
  );
  const got = proto.decode(S, 't.All', unknown);
  eq(got.s, 'ok', 'known field read past unknown ones');
  eq(Object.keys(got).sort(), Object.keys(DEFAULTS).sort(), 'unknown fields are skipped, not added');
  const nested = proto.decode(S, 't.Inner', proto.encode(S, 't.Inner', { inner: { inner: { x: 'three' } } }));
  eq(nested.inner.inner.x, 'three', 'nested messages');
  eq(nested.inner.inner.inner, null, 'absent message is null');
  eq(nested.inner.n, '0', 'nested defaults are filled');
});

await section('codec errors', () => {
  const full = proto.encode(S, 't.All', { s: 'hello', i64: '-5' });
  throws(() => proto.decode(S, 't.All', full.slice(0, full.length - 1)), /truncat/i, 'truncated varint throws');
  throws(() => proto.decode(S, 't.All', bytes(0x72, 0x05, 0x61)), /truncat/i, 'length past the end throws');
  throws(() => proto.decode(S, 't.All', bytes(0x18)), /truncat/i, 'a tag without its value throws');
  throws(() => proto.decode(S, 't.All', bytes(0x4d, 1, 2)), /truncat/i, 'truncated fixed32 throws');
  throws(() => proto.decode(S, 't.All', bytes(0x1f, 0x00)), /wire type/i, 'invalid wire type throws');
  throws(() => proto.decode(S, 't.All', bytes(0x72, 0x01, 0xff)), /UTF-8/i, 'invalid UTF-8 throws');
  throws(() => proto.encode(S, 't.All', { e: 'COLOR_BLUE' }), /COLOR_BLUE/, 'an unknown enum name is refused');
  throws(() => proto.encode(S, 't.All', { nope: 1 }), /nope/, 'an unknown field is refused');
  throws(() => proto.encode(S, 't.All', { i32: 2 ** 31 }), /range/, 'int32 out of range is refused');
  throws(() => proto.encode(S, 't.All', { u64: '-1' }), /range/, 'negative uint64 is refused');
  throws(() => proto.encode(S, 't.All', { i64: '1.5' }), /integer/, 'a non-integer int64 is refused');
  throws(() => proto.decode(S, 't.Nope', new Uint8Array(0)), /unknown message/, 'an unknown type is refused');
});

// ------------------------------------------------------------------ codec, the real schema and the fixture

const schema = await (await fetch('/schema.json')).json();
gw.setSchema(schema);

await section('real schema', () => {
  ok(Array.isArray(schema.messages['otc.v1.Trade']), 'schema has otc.v1.Trade');
  ok(schema.methods['/otc.v1.SupportService/ListAppeals'], 'schema has ListAppeals');
  const ev = { seq: '18446744073709551615', type: 'EVENT_TYPE_APPEAL_OPENED', trade_id: 'T-9', text: '你好 <b>x</b> 🙂' };
  const got = proto.decode(schema, 'otc.v1.Event', proto.encode(schema, 'otc.v1.Event', ev));
  eq([got.seq, got.type, got.trade_id, got.text, got.at], [ev.seq, ev.type, ev.trade_id, ev.text, null], 'Event round trip');
  const list = proto.decode(schema, 'otc.v1.ListAppealsResponse', proto.encode(schema, 'otc.v1.ListAppealsResponse', {
    appeals: [{ trade_id: 'T-1', status: 'APPEAL_STATUS_OPEN', opened_at: { seconds: '1700000000', nanos: 1 } }],
    next_page_token: 'T-1',
    as_of_seq: '77',
  }));
  eq([list.appeals[0].status, list.appeals[0].opened_at.seconds, list.as_of_seq], ['APPEAL_STATUS_OPEN', '1700000000', '77'], 'ListAppealsResponse round trip');
});

function matchFixture(actual, expected, path, out) {
  if (expected === null || expected === undefined) {
    if (actual !== null && actual !== undefined) out.push(`${path}: got ${show(actual)}, want null`);
    return;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) {
      out.push(`${path}: got ${show(actual)}, want ${expected.length} items`);
      return;
    }
    expected.forEach((x, i) => matchFixture(actual[i], x, `${path}[${i}]`, out));
    return;
  }
  if (actual instanceof Uint8Array) {
    const b64 = fmt.bytesToBase64(actual);
    const want = String(expected);
    if (b64 !== want && b64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '') !== want.replace(/=+$/, '')) {
      out.push(`${path}: bytes ${b64}, want ${want}`);
    }
    return;
  }
  if (typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object') {
      out.push(`${path}: got ${show(actual)}, want an object`);
      return;
    }
    for (const k of Object.keys(expected)) {
      if (!(k in actual)) out.push(`${path}.${k}: missing`);
      else matchFixture(actual[k], expected[k], `${path}.${k}`, out);
    }
    return;
  }
  if (typeof expected === 'string' && actual && typeof actual === 'object' && 'seconds' in actual) {
    // A Timestamp given as RFC 3339 text.
    const ms = fmt.timestampMillis(actual);
    if (ms !== Date.parse(expected)) out.push(`${path}: ${show(actual)} is not ${expected}`);
    return;
  }
  if (String(actual) !== String(expected) || typeof actual === 'boolean' !== (typeof expected === 'boolean')) {
    out.push(`${path}: got ${show(actual)}, want ${show(expected)}`);
  }
}

await section('fixture: a prost-encoded Trade', () => {
  if (typeof fixtures === 'undefined' || !fixtures || !fixtures.tradeB64) {
    failures.push('fixtures.tradeB64 was not provided');
    return;
  }
  const raw = fmt.base64ToBytes(fixtures.tradeB64);
  const decoded = proto.decode(schema, 'otc.v1.Trade', raw);
  const mismatches = [];
  matchFixture(decoded, fixtures.trade, 'trade', mismatches);
  eq(mismatches, [], 'decoded fixture equals fixtures.trade');
  ok(Object.keys(fixtures.trade).length > 0, 'fixtures.trade has fields');
  const again = proto.encode(schema, 'otc.v1.Trade', decoded);
  const redecoded = proto.decode(schema, 'otc.v1.Trade', again);
  eq(redecoded, decoded, 're-encoded fixture decodes to the same trade');
  eq(fmt.bytesToBase64(again), fixtures.tradeB64, 're-encoding gives prost\'s bytes');
});

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
  eq(gw.codeName(7), 'PERMISSION_DENIED', 'code names');
  throws(() => new gw.GrpcWebDecoder({ 'content-type': 'text/html' }), /content type/, 'an HTML reply is refused');
});

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

// ------------------------------------------------------------------ i18n

await section('i18n', () => {
  const enKeys = Object.keys(i18n.en).sort();
  const zhKeys = Object.keys(i18n.zh).sort();
  eq(enKeys.filter((k) => !(k in i18n.zh)), [], 'every English key has a Chinese label');
  eq(zhKeys.filter((k) => !(k in i18n.en)), [], 'every Chinese key has an English label');
  eq(enKeys.filter((k) => typeof i18n.en[k] !== 'string' || i18n.en[k].trim() === ''), [], 'no empty English label');
  eq(zhKeys.filter((k) => typeof i18n.zh[k] !== 'string' || i18n.zh[k].trim() === ''), [], 'no empty Chinese label');
  const params = (s) => (s.match(/\{\w+\}/g) || []).sort().join(',');
  eq(enKeys.filter((k) => params(i18n.en[k]) !== params(i18n.zh[k])), [], 'both languages use the same placeholders');
  eq([i18n.t('queue.title', null, 'en'), i18n.t('queue.title', null, 'zh')], ['Appeal queue', '申诉队列'], 'queue title in both languages');
  eq(i18n.t('trade.title', { id: 'T-7' }, 'zh'), '订单 T-7', 'placeholders are filled');
  const missing = [];
  for (const e of ['otc.v1.TradeState', 'otc.v1.AppealStatus', 'otc.v1.Resolution', 'otc.v1.PaymentKind', 'otc.v1.EventType']) {
    for (const name of Object.values(schema.enums[e] || {})) if (!i18n.hasKey(i18n.enumKey(name))) missing.push(name);
  }
  for (const k of ['WRONG_AMOUNT', 'PAID_AFTER_CANCEL', 'ALREADY_ENDED', 'UNKNOWN_REFERENCE', 'PAID_TWICE',
    'MISSING_HERE', 'MISSING_THERE', 'AMOUNT_MISMATCH', 'STATUS_MISMATCH']) {
    if (!i18n.hasKey(i18n.enumKey(k))) missing.push(k);
  }
  eq(missing, [], 'every enum value shown has a label');
  eq(i18n.enumLabel('SOMETHING_NEW'), 'SOMETHING_NEW', 'an unknown value shows as itself');
});

// ------------------------------------------------------------------ time, JWT

await section('time formatting', () => {
  const instant = ts(1700000000, 123000000); // 2023-11-14T22:13:20.123Z
  const utc = fmt.formatTime(instant, 'en', 'UTC');
  const sh = fmt.formatTime(instant, 'en', 'Asia/Shanghai');
  eq(utc, '2023-11-14 22:13:20', 'UTC');
  eq(sh, '2023-11-15 06:13:20', 'Asia/Shanghai');
  const hour = (s) => Number(s.slice(11, 13)) + 24 * Number(s.slice(8, 10));
  eq(hour(sh) - hour(utc), 8, 'Shanghai is 8 hours ahead of UTC');
  eq(fmt.formatTime(instant, 'zh', 'Asia/Shanghai'), '2023-11-15 06:13:20', 'the same in Chinese');
  eq(fmt.formatTime(ts(0), 'en', 'UTC'), '—', 'seconds "0" is unset');
  eq(fmt.formatTime(null, 'en', 'UTC'), '—', 'null is unset');
  eq(fmt.formatTime(ts('-86400'), 'en', 'UTC'), '1969-12-31 00:00:00', 'before the epoch');
  ok(fmt.isValidTimeZone('Asia/Shanghai') && fmt.isValidTimeZone('UTC'), 'valid zones');
  ok(!fmt.isValidTimeZone('Mars/Olympus_Mons') && !fmt.isValidTimeZone(''), 'invalid zones');
  const before = fmt.getTimeZone();
  const stored = localStorage.getItem('otc.tz');
  throws(() => fmt.setTimeZone('Mars/Olympus_Mons'), /Mars\/Olympus_Mons/, 'an invalid zone is refused, naming it');
  eq(fmt.getTimeZone(), before, 'a refused zone changes nothing');
  eq(fmt.setTimeZone('Asia/Shanghai'), 'Asia/Shanghai', 'a valid zone is taken');
  eq(localStorage.getItem('otc.tz'), 'Asia/Shanghai', 'the zone is kept in localStorage otc.tz');
  fmt.setTimeZone(before);
  if (stored === null) localStorage.removeItem('otc.tz');
  else localStorage.setItem('otc.tz', stored);
  eq(fmt.formatDuration('3725'), '1h 02m', 'durations');
});

function b64url(s) {
  return fmt.bytesToBase64(utf8(s)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

await section('lists page by the server\'s bound', async () => {
  if (typeof document === 'undefined') return;
  const { pageSize } = await import('/js/app.js');
  eq(await pageSize(), 150, 'the server runs with --page-size-max 150');
  eq(await pageSize(), 150, 'read once, then kept');
});

await section('JWT payload', () => {
  const sub = '3f2a6c1e-1111-4222-8333-944445555666';
  const token = `${b64url('{"alg":"HS256","typ":"JWT"}')}.${b64url(JSON.stringify({ sub, role: 'support_viewer', exp: 2000000000, name: '客服 ✓?>' }))}.c2ln`;
  const p = fmt.readJwtPayload(token);
  eq([p.role, p.sub, p.exp], ['support_viewer', sub, 2000000000], 'role, sub and exp');
  eq(p.claims.name, '客服 ✓?>', 'UTF-8 claims (base64url with - and _)');
  const loud = `x.${b64url(JSON.stringify({ sub: sub.toUpperCase().replace(/-/g, ''), role: 'support', exp: 1 }))}.c2ln`;
  eq(fmt.readJwtPayload(loud).sub, sub, 'a sub the server accepts in another form reads as the server writes ids');
  for (const form of [sub.toUpperCase(), `{${sub}}`, `urn:uuid:${sub}`, sub.replace(/-/g, '')]) {
    eq(fmt.canonicalUuid(form), sub, `canonical from ${form}`);
  }
  eq(fmt.canonicalUuid('not-a-uuid'), 'not-a-uuid', 'anything else is left as it is');
  throws(() => fmt.readJwtPayload('abc'), /JWT/, 'one part is not a JWT');
  throws(() => fmt.readJwtPayload('a.b'), /JWT/, 'two parts are not a JWT');
  throws(() => fmt.readJwtPayload('a.!!!.c'), /JWT/, 'a bad payload is not a JWT');
  throws(() => fmt.readJwtPayload(`a.${b64url('[1]')}.c`), /JWT/, 'a non-object payload is not a JWT');
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
  } finally {
    window.fetch = real;
  }
});

// ------------------------------------------------------------------ DOM safety (in the page)

await section('DOM helpers keep server text as text', async () => {
  if (typeof document === 'undefined') return;
  const dom = await import('/js/dom.js');
  const { isInlineImage } = await import('/js/attachments.js');
  // Built in pieces so that no literal event-handler attribute appears in this file.
  const hostile = `<img src=x ${'on'}error="window.__pwned=1"><script>window.__pwned=1</script>`;
  const el = dom.h('span', { text: hostile });
  eq([el.childElementCount, el.textContent], [0, hostile], 'text stays text');
  const el2 = dom.h('div', null, hostile, dom.badge(hostile));
  eq(el2.querySelectorAll('img,script').length, 0, 'no elements from text children or badges');
  throws(() => dom.h('a', { href: 'javascript:alert(1)' }), /blob/, 'links only to blob: URLs');
  throws(() => dom.h('div', { onclick: 'x()' }), /not allowed/, 'no event-handler attributes');
  ok([isInlineImage('image/png'), isInlineImage('image/jpeg'), isInlineImage('IMAGE/WEBP')].every(Boolean), 'PNG, JPEG and WebP are shown inline');
  ok(![isInlineImage('image/svg+xml'), isInlineImage('text/html'), isInlineImage('application/pdf'), isInlineImage('')].some(Boolean), 'SVG, HTML, PDF are not');
  ok(window.__pwned === undefined, 'nothing ran');
});

return { passed, failures };
