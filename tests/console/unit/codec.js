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

