// A protobuf (proto3) binary codec driven by /schema.json.
//
//   encode(schema, "otc.v1.Trade", obj) -> Uint8Array
//   decode(schema, "otc.v1.Trade", bytes) -> obj
//
// Objects use the proto field names (snake_case). Decoded objects always carry
// every field with its proto3 default: strings "", bools false, 32-bit integers
// and floats as numbers, 64-bit integers as decimal strings (exact, via BigInt),
// enums as their NAME (an unknown number stays a number), bytes as Uint8Array,
// repeated fields as arrays, message fields as an object or null when absent.
// No DOM here: this module is also loaded by Node for checks.

const INT64 = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const VARINT = new Set(['int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64', 'bool', 'enum']);
const FIXED64 = new Set(['fixed64', 'sfixed64', 'double']);
const FIXED32 = new Set(['fixed32', 'sfixed32', 'float']);
const SCALARS = new Set([...VARINT, ...FIXED64, ...FIXED32, 'string', 'bytes']);

const utf8Encoder = new TextEncoder();
// ignoreBOM: a string that starts with U+FEFF keeps it (it is the user's text).
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function fail(message) {
  return new Error(`protobuf: ${message}`);
}

// ------------------------------------------------------------------ schema lookup

const cache = new WeakMap();

function tables(schema) {
  if (schema === null || typeof schema !== 'object') throw fail('no schema');
  let perSchema = cache.get(schema);
  if (!perSchema) {
    perSchema = { messages: new Map(), enums: new Map() };
    cache.set(schema, perSchema);
  }
  return perSchema;
}

function infoOf(schema, typeName) {
  const perSchema = tables(schema);
  let info = perSchema.messages.get(typeName);
  if (info) return info;
  const fields = schema && schema.messages && schema.messages[typeName];
  if (!Array.isArray(fields)) throw fail(`unknown message type ${typeName}`);
  const sorted = fields.slice().sort((a, b) => a.no - b.no);
  const byNo = new Map();
  const byName = new Map();
  for (const f of sorted) {
    if (!SCALARS.has(f.type) && f.type !== 'message') {
      throw fail(`${typeName}.${f.name}: unknown field type ${f.type}`);
    }
    byNo.set(f.no, f);
    byName.set(f.name, f);
  }
  info = { name: typeName, fields: sorted, byNo, byName };
  perSchema.messages.set(typeName, info);
  return info;
}

function enumOf(schema, enumName) {
  const perSchema = tables(schema);
  let e = perSchema.enums.get(enumName);
  if (e) return e;
  const values = schema.enums && schema.enums[enumName];
  if (!values) throw fail(`unknown enum type ${enumName}`);
  const byNumber = new Map();
  const byName = new Map();
  for (const [num, name] of Object.entries(values)) {
    byNumber.set(Number(num), name);
    byName.set(name, Number(num));
  }
  e = { byNumber, byName };
  perSchema.enums.set(enumName, e);
  return e;
}

function defaultFor(schema, f) {
  if (f.repeated) return [];
  switch (f.type) {
    case 'string': return '';
    case 'bool': return false;
    case 'bytes': return new Uint8Array(0);
    case 'message': return null;
    case 'enum': {
      const name = enumOf(schema, f.ref).byNumber.get(0);
      return name === undefined ? 0 : name;
    }
    default: return INT64.has(f.type) ? '0' : 0;
  }
}

function defaults(schema, info) {
  const obj = {};
  for (const f of info.fields) obj[f.name] = defaultFor(schema, f);
  return obj;
}

// ------------------------------------------------------------------ decoding

class Reader {
  constructor(bytes, start, end) {
    this.buf = bytes;
    this.pos = start;
    this.end = end;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  need(n, what) {
    if (this.end - this.pos < n) {
      throw fail(`truncated input: ${what} needs ${n} bytes at offset ${this.pos}, ${this.end - this.pos} left`);
    }
  }

  // An unsigned 64-bit varint as a BigInt.
  varint() {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw fail(`truncated input: varint cut off at offset ${this.pos}`);
      const b = this.buf[this.pos++];
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return BigInt.asUintN(64, result);
      shift += 7n;
    }
    throw fail(`invalid varint (more than 10 bytes) before offset ${this.pos}`);
  }

  // A varint that must fit a safe integer (tags, lengths).
  smallVarint(what) {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw fail(`truncated input: ${what} cut off at offset ${this.pos}`);
      const b = this.buf[this.pos++];
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) {
        if (!Number.isSafeInteger(result)) throw fail(`${what} too large`);
        return result;
      }
      mul *= 128;
    }
    throw fail(`invalid ${what} (more than 10 bytes)`);
  }

  length() {
    const n = this.smallVarint('length');
    this.need(n, 'length-delimited field');
    return n;
  }

  skip(wireType, fieldNo) {
    switch (wireType) {
      case 0: this.varint(); break;
      case 1: this.need(8, 'fixed64 field'); this.pos += 8; break;
      case 2: { const n = this.length(); this.pos += n; break; }
      case 5: this.need(4, 'fixed32 field'); this.pos += 4; break;
      case 3: {
        // A (deprecated) group: skip until its end tag.
        for (;;) {
          if (this.pos >= this.end) throw fail(`truncated input: group ${fieldNo} not closed`);
          const tag = this.smallVarint('tag');
          const wt = tag & 7;
          const no = Math.floor(tag / 8);
          if (wt === 4) {
            if (no !== fieldNo) throw fail(`mismatched end of group ${no} (expected ${fieldNo})`);
            break;
          }
          this.skip(wt, no);
        }
        break;
      }
      default: throw fail(`invalid wire type ${wireType} for field ${fieldNo} at offset ${this.pos}`);
    }
  }
}

function wireTypeOf(type) {
  if (VARINT.has(type)) return 0;
  if (FIXED64.has(type)) return 1;
  if (FIXED32.has(type)) return 5;
  return 2;
}

function readScalar(schema, r, f) {
  switch (f.type) {
    case 'int32': return Number(BigInt.asIntN(32, r.varint()));
    case 'uint32': return Number(BigInt.asUintN(32, r.varint()));
    case 'sint32': {
      const n = Number(BigInt.asUintN(32, r.varint()));
      return (n >>> 1) ^ -(n & 1);
    }
    case 'int64': return BigInt.asIntN(64, r.varint()).toString();
    case 'uint64': return r.varint().toString();
    case 'sint64': {
      const v = r.varint();
      return ((v >> 1n) ^ -(v & 1n)).toString();
    }
    case 'bool': return r.varint() !== 0n;
    case 'enum': {
      const n = Number(BigInt.asIntN(32, r.varint()));
      const name = enumOf(schema, f.ref).byNumber.get(n);
      return name === undefined ? n : name;
    }
    case 'fixed32': r.need(4, f.name); r.pos += 4; return r.view.getUint32(r.pos - 4, true);
    case 'sfixed32': r.need(4, f.name); r.pos += 4; return r.view.getInt32(r.pos - 4, true);
    case 'float': r.need(4, f.name); r.pos += 4; return r.view.getFloat32(r.pos - 4, true);
    case 'fixed64': r.need(8, f.name); r.pos += 8; return r.view.getBigUint64(r.pos - 8, true).toString();
    case 'sfixed64': r.need(8, f.name); r.pos += 8; return r.view.getBigInt64(r.pos - 8, true).toString();
    case 'double': r.need(8, f.name); r.pos += 8; return r.view.getFloat64(r.pos - 8, true);
    case 'string': {
      const n = r.length();
      r.pos += n;
      try {
        return utf8Decoder.decode(r.buf.subarray(r.pos - n, r.pos));
      } catch {
        throw fail(`field ${f.name}: invalid UTF-8`);
      }
    }
    case 'bytes': {
      const n = r.length();
      r.pos += n;
      return r.buf.slice(r.pos - n, r.pos);
    }
    default: throw fail(`field ${f.name}: cannot read type ${f.type}`);
  }
}

function decodeInto(schema, info, r, obj, depth) {
  if (depth > 100) throw fail('message nesting too deep');
  while (r.pos < r.end) {
    const tag = r.smallVarint('tag');
    const wireType = tag & 7;
    const no = Math.floor(tag / 8);
    if (no === 0) throw fail(`invalid field number 0 at offset ${r.pos}`);
    const f = info.byNo.get(no);
    if (!f) {
      r.skip(wireType, no);
      continue;
    }
    if (f.type === 'message') {
      if (wireType !== 2) throw fail(`${info.name}.${f.name}: wire type ${wireType}, expected 2`);
      const n = r.length();
      const sub = infoOf(schema, f.ref);
      const subReader = new Reader(r.buf, r.pos, r.pos + n);
      r.pos += n;
      if (f.repeated) {
        const child = defaults(schema, sub);
        decodeInto(schema, sub, subReader, child, depth + 1);
        obj[f.name].push(child);
      } else {
        // A repeated occurrence of a singular message merges into it.
        if (obj[f.name] === null) obj[f.name] = defaults(schema, sub);
        decodeInto(schema, sub, subReader, obj[f.name], depth + 1);
      }
      continue;
    }
    const expected = wireTypeOf(f.type);
    if (f.repeated && wireType === 2 && expected !== 2) {
      // Packed.
      const n = r.length();
      const packed = new Reader(r.buf, r.pos, r.pos + n);
      r.pos += n;
      while (packed.pos < packed.end) obj[f.name].push(readScalar(schema, packed, f));
      continue;
    }
    if (wireType !== expected) {
      throw fail(`${info.name}.${f.name}: wire type ${wireType}, expected ${expected} for ${f.type}`);
    }
    const v = readScalar(schema, r, f);
    if (f.repeated) obj[f.name].push(v);
    else obj[f.name] = v;
  }
  if (r.pos !== r.end) throw fail(`${info.name}: field overruns its enclosing message`);
}

/** Decodes `bytes` (Uint8Array or ArrayBuffer) as message `typeName`. */
export function decode(schema, typeName, bytes) {
  let buf = bytes;
  if (buf instanceof ArrayBuffer) buf = new Uint8Array(buf);
  if (!(buf instanceof Uint8Array)) throw fail('decode needs a Uint8Array');
  const info = infoOf(schema, typeName);
  const obj = defaults(schema, info);
  decodeInto(schema, info, new Reader(buf, 0, buf.length), obj, 0);
  return obj;
}

// ------------------------------------------------------------------ encoding

class Writer {
  constructor() {
    this.buf = new Uint8Array(256);
    this.pos = 0;
  }

  reserve(n) {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  byte(b) {
    this.reserve(1);
    this.buf[this.pos++] = b;
  }

  // A non-negative safe integer (tags, lengths, uint32).
  uvarint(n) {
    this.reserve(10);
    while (n >= 0x80) {
      this.buf[this.pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
  }

  // A BigInt taken as unsigned 64 bits (negatives become 10-byte two's complement).
  bigVarint(v) {
    let u = BigInt.asUintN(64, v);
    this.reserve(10);
    while (u >= 0x80n) {
      this.buf[this.pos++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.buf[this.pos++] = Number(u);
  }

  bytes(b) {
    this.uvarint(b.length);
    this.reserve(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  fixed(n, setter, value) {
    this.reserve(n);
    const view = new DataView(this.buf.buffer, this.pos, n);
    view[setter](0, value, true);
    this.pos += n;
  }

  tag(no, wireType) {
    this.uvarint(no * 8 + wireType);
  }

  finish() {
    return this.buf.slice(0, this.pos);
  }
}

const LIMITS = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
  enum: [-(2n ** 31n), 2n ** 31n - 1n],
};

function toBigInt(v, where, type) {
  let b;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw fail(`${where}: ${v} is not an integer`);
    b = BigInt(v);
  } else if (typeof v === 'string' && /^\s*[-+]?\d+\s*$/.test(v)) {
    b = BigInt(v.trim().replace(/^\+/, ''));
  } else {
    throw fail(`${where}: ${JSON.stringify(String(v))} is not an integer`);
  }
  const [lo, hi] = LIMITS[type];
  if (b < lo || b > hi) throw fail(`${where}: ${b} is out of range for ${type}`);
  return b;
}

function enumNumber(schema, f, v, where) {
  if (typeof v === 'string' && !/^\s*[-+]?\d+\s*$/.test(v)) {
    const n = enumOf(schema, f.ref).byName.get(v);
    if (n === undefined) throw fail(`${where}: ${JSON.stringify(v)} is not a value of ${f.ref}`);
    return BigInt(n);
  }
  return toBigInt(v, where, 'enum');
}

function isDefault(schema, f, v) {
  switch (f.type) {
    case 'string': return v === '';
    case 'bool': return v === false;
    case 'bytes': return v.length === 0;
    case 'double':
    case 'float': return Number(v) === 0 && !Object.is(Number(v), -0);
    case 'enum': return enumNumber(schema, f, v, f.name) === 0n;
    default: return toBigInt(v, f.name, f.type) === 0n;
  }
}

function toBytes(v, where) {
  if (v instanceof Uint8Array) return v;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (Array.isArray(v)) return Uint8Array.from(v);
  throw fail(`${where}: bytes must be a Uint8Array`);
}

// Writes one scalar value without its tag.
function writeScalar(schema, w, f, v, where) {
  switch (f.type) {
    case 'int32': case 'int64': case 'uint32': case 'uint64':
      w.bigVarint(toBigInt(v, where, f.type));
      break;
    case 'sint32': case 'sint64': {
      const b = toBigInt(v, where, f.type);
      const bits = f.type === 'sint32' ? 32 : 64;
      w.bigVarint(BigInt.asUintN(bits, (b << 1n) ^ (b < 0n ? -1n : 0n)));
      break;
    }
    case 'bool':
      if (typeof v !== 'boolean') throw fail(`${where}: expected true or false`);
      w.byte(v ? 1 : 0);
      break;
    case 'enum': w.bigVarint(enumNumber(schema, f, v, where)); break;
    case 'fixed32': w.fixed(4, 'setUint32', Number(toBigInt(v, where, f.type))); break;
    case 'sfixed32': w.fixed(4, 'setInt32', Number(toBigInt(v, where, f.type))); break;
    case 'fixed64': w.fixed(8, 'setBigUint64', toBigInt(v, where, f.type)); break;
    case 'sfixed64': w.fixed(8, 'setBigInt64', toBigInt(v, where, f.type)); break;
    case 'float': w.fixed(4, 'setFloat32', toNumber(v, where)); break;
    case 'double': w.fixed(8, 'setFloat64', toNumber(v, where)); break;
    case 'string':
      if (typeof v !== 'string') throw fail(`${where}: expected a string`);
      w.bytes(utf8Encoder.encode(v));
      break;
    case 'bytes': w.bytes(toBytes(v, where)); break;
    default: throw fail(`${where}: cannot write type ${f.type}`);
  }
}

function toNumber(v, where) {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v);
    if (!Number.isNaN(n) || v.trim() === 'NaN') return n;
  }
  throw fail(`${where}: expected a number`);
}

function encodeInto(schema, info, obj, w, depth) {
  if (depth > 100) throw fail('message nesting too deep');
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw fail(`${info.name}: expected an object`);
  }
  for (const key of Object.keys(obj)) {
    if (!info.byName.has(key)) throw fail(`${info.name} has no field ${JSON.stringify(key)}`);
  }
  for (const f of info.fields) {
    const v = obj[f.name];
    if (v === undefined || v === null) continue;
    const where = `${info.name}.${f.name}`;
    if (f.repeated) {
      if (!Array.isArray(v)) throw fail(`${where}: expected an array`);
      if (v.length === 0) continue;
      if (f.type === 'message') {
        const sub = infoOf(schema, f.ref);
        for (const item of v) writeMessage(schema, sub, item, w, f.no, depth);
      } else if (f.type === 'string' || f.type === 'bytes') {
        for (const item of v) {
          w.tag(f.no, 2);
          writeScalar(schema, w, f, item, where);
        }
      } else {
        // proto3 packs repeated numeric fields.
        const inner = new Writer();
        for (const item of v) writeScalar(schema, inner, f, item, where);
        w.tag(f.no, 2);
        w.bytes(inner.finish());
      }
      continue;
    }
    if (f.type === 'message') {
      writeMessage(schema, infoOf(schema, f.ref), v, w, f.no, depth);
      continue;
    }
    if (f.type === 'bytes') toBytes(v, where);
    if (isDefault(schema, f, v)) continue;
    w.tag(f.no, wireTypeOf(f.type));
    writeScalar(schema, w, f, v, where);
  }
}

function writeMessage(schema, sub, value, w, no, depth) {
  const inner = new Writer();
  encodeInto(schema, sub, value, inner, depth + 1);
  w.tag(no, 2);
  w.bytes(inner.finish());
}

/** Encodes `obj` as message `typeName`. */
export function encode(schema, typeName, obj) {
  const info = infoOf(schema, typeName);
  const w = new Writer();
  encodeInto(schema, info, obj || {}, w, 0);
  return w.finish();
}

/** The fields of a message type, sorted by number (for tools and tests). */
export function fieldsOf(schema, typeName) {
  return infoOf(schema, typeName).fields.slice();
}
