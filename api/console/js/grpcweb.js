// gRPC-Web (binary, application/grpc-web+proto) over fetch.
//
//   call(method, request, {token, signal, deadlineMs}) -> Promise<response object>
//   stream(method, request, {token, onMessage, onOpen, signal}) -> Promise<void> (ends OK)
//
// Errors are GrpcError {code, codeName, message} (plus `network: true` when no
// gRPC status came back, `aborted: true` when the caller's signal aborted;
// this page's own messages carry `i18nKey` and `args` for the banner).
// The token only ever goes into the Authorization header; nothing here logs.
// The frame parsing (GrpcWebDecoder) works on plain bytes, without fetch.

import { decode, encode } from './proto.js';

export const CODE_NAMES = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND',
  'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION',
  'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS',
  'UNAUTHENTICATED',
];

export function codeName(code) {
  return CODE_NAMES[code] || `CODE_${code}`;
}

export class GrpcError extends Error {
  constructor(code, message, extra = {}) {
    super(message);
    this.name = 'GrpcError';
    this.code = code;
    this.codeName = codeName(code);
    Object.assign(this, extra);
  }
}

// ------------------------------------------------------------------ pure parsing

/** A length-prefixed message frame: flag 0x00, 4-byte big-endian length, bytes. */
export function frame(message) {
  const out = new Uint8Array(5 + message.length);
  new DataView(out.buffer).setUint32(1, message.length, false);
  out.set(message, 5);
  return out;
}

/** Decodes a percent-encoded grpc-message (UTF-8 bytes, %XX escapes). */
export function decodeGrpcMessage(s) {
  if (!s) return '';
  const bytes = [];
  const enc = new TextEncoder();
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '%' && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      const cp = s.codePointAt(i);
      if (cp > 0xffff) i++;
      for (const b of enc.encode(String.fromCodePoint(cp))) bytes.push(b);
    }
  }
  return new TextDecoder('utf-8').decode(Uint8Array.from(bytes));
}

/** Parses a trailers frame: `key: value\r\n` lines; keys lower-cased. */
export function parseTrailers(bytes) {
  const text = new TextDecoder('utf-8').decode(bytes);
  const out = {};
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const key = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    out[key] = key in out ? `${out[key]}, ${value}` : value;
  }
  return out;
}

function header(headers, name) {
  if (!headers) return null;
  if (typeof headers.get === 'function') return headers.get(name);
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === name) return v;
  }
  return null;
}

/** The gRPC status in a header set or trailers object, or null when absent. */
export function statusFrom(headers) {
  const raw = header(headers, 'grpc-status');
  if (raw === null || raw === undefined || String(raw).trim() === '') return null;
  const code = Number.parseInt(String(raw).trim(), 10);
  return {
    code: Number.isNaN(code) ? 2 : code,
    message: decodeGrpcMessage(header(headers, 'grpc-message') || ''),
  };
}

/**
 * Splits a byte stream into frames, whatever the chunking.
 * push(chunk) returns the complete frames: {trailers: false, data} or {trailers: true, data}.
 */
export class FrameParser {
  constructor() {
    this.buf = new Uint8Array(0);
  }

  push(chunk) {
    const bytes = chunk instanceof Uint8Array ? chunk : new Uint8Array(chunk);
    if (this.buf.length === 0) {
      this.buf = bytes;
    } else {
      const joined = new Uint8Array(this.buf.length + bytes.length);
      joined.set(this.buf);
      joined.set(bytes, this.buf.length);
      this.buf = joined;
    }
    const frames = [];
    let pos = 0;
    while (this.buf.length - pos >= 5) {
      const flag = this.buf[pos];
      const len = new DataView(this.buf.buffer, this.buf.byteOffset + pos + 1, 4).getUint32(0, false);
      if (this.buf.length - pos - 5 < len) break;
      if (flag & 0x01) throw new GrpcError(13, 'compressed gRPC-Web frames are not supported', { i18nKey: 'net.compressed' });
      frames.push({ trailers: (flag & 0x80) !== 0, data: this.buf.slice(pos + 5, pos + 5 + len) });
      pos += 5 + len;
    }
    this.buf = this.buf.slice(pos);
    return frames;
  }

  /** Bytes received but not yet a whole frame. */
  get pending() {
    return this.buf.length;
  }
}

/**
 * One gRPC-Web response, fed bytes: push(chunk) -> message payloads (Uint8Array[]);
 * finish() checks the final status and throws a GrpcError when it is not OK.
 */
export class GrpcWebDecoder {
  constructor(headers) {
    this.headers = headers;
    this.parser = new FrameParser();
    this.trailers = null;
    const ct = header(headers, 'content-type');
    this.headerStatus = statusFrom(headers);
    if (this.headerStatus && this.headerStatus.code !== 0) {
      // Trailers-only response: the status is in the headers.
      throw new GrpcError(this.headerStatus.code, this.headerStatus.message);
    }
    if (ct && !/^application\/grpc-web/i.test(ct) && !this.headerStatus) {
      throw new GrpcError(13, `unexpected response content type ${ct}`, { network: true, i18nKey: 'net.type', args: { ct } });
    }
  }

  push(chunk) {
    const out = [];
    for (const f of this.parser.push(chunk)) {
      if (this.trailers) throw new GrpcError(13, 'data after the trailers', { i18nKey: 'net.afterTrailers' });
      if (f.trailers) this.trailers = parseTrailers(f.data);
      else out.push(f.data);
    }
    return out;
  }

  finish() {
    if (this.parser.pending) {
      throw new GrpcError(13, `response cut off (${this.parser.pending} bytes of an incomplete frame)`, { network: true, i18nKey: 'net.cut', args: { n: this.parser.pending } });
    }
    const st = (this.trailers && statusFrom(this.trailers)) || this.headerStatus;
    if (!st) throw new GrpcError(13, 'response ended without a gRPC status', { network: true, i18nKey: 'net.nostatus' });
    if (st.code !== 0) throw new GrpcError(st.code, st.message);
    return st;
  }
}

/** The gRPC status for an HTTP status other than 200 (per the gRPC HTTP mapping). */
export function httpStatusError(status) {
  const map = { 400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14 };
  const code = map[status] ?? 2;
  return new GrpcError(code, `HTTP ${status} from the server`, { httpStatus: status, network: true, i18nKey: 'net.http', args: { status } });
}

/** Whether a failed mutating call may or may not have taken effect (retry with the same id). */
export function isAmbiguous(err) {
  if (!err || typeof err !== 'object') return true;
  if (err.network) return true;
  return ['UNAVAILABLE', 'DEADLINE_EXCEEDED', 'UNKNOWN', 'INTERNAL', 'CANCELLED', 'ABORTED']
    .includes(err.codeName);
}

/**
 * Whether a failed read failed on the way (network, server restarting or
 * busy), so trying again later may succeed. Not INTERNAL or UNKNOWN: a reply
 * this page cannot read fails the same way every time.
 */
export function isTransient(err) {
  if (!err || typeof err !== 'object') return false;
  // By status alone: no answer at all and HTTP 429/502/503/504 are
  // UNAVAILABLE; a proxy's 403 or 404 is not, however often it is asked.
  return ['UNAVAILABLE', 'DEADLINE_EXCEEDED', 'RESOURCE_EXHAUSTED'].includes(err.codeName);
}

// ------------------------------------------------------------------ the schema

let schemaPromise = null;
let schemaValue = null;

export function setSchema(schema) {
  schemaValue = schema;
  schemaPromise = Promise.resolve(schema);
}

export function loadSchema() {
  if (!schemaPromise) {
    // Bounded as a call is: a dead connection fails it (and it is fetched
    // again next time) instead of holding every call behind it.
    const signal = AbortSignal.timeout(CALL_DEADLINE_MS);
    schemaPromise = fetch('/schema.json', { cache: 'no-cache', credentials: 'same-origin', signal })
      .then((r) => {
        if (!r.ok) throw new GrpcError(14, `could not load /schema.json (HTTP ${r.status})`, { network: true, i18nKey: 'net.schema', args: { detail: `HTTP ${r.status}` } });
        return r.json();
      })
      .then((s) => {
        schemaValue = s;
        return s;
      })
      .catch((e) => {
        schemaPromise = null;
        throw e instanceof GrpcError ? e : new GrpcError(14, `could not load /schema.json: ${e.message}`, { network: true, i18nKey: 'net.schema', args: { detail: e.message } });
      });
  }
  return schemaPromise;
}

export function currentSchema() {
  return schemaValue;
}

function methodInfo(schema, method) {
  const m = schema.methods && schema.methods[method];
  if (!m) throw new GrpcError(12, `unknown method ${method}`, { i18nKey: 'net.unknownMethod', args: { method } });
  return m;
}

// ------------------------------------------------------------------ transport

async function open(method, request, opts) {
  const schema = opts.schema || (await loadSchema());
  const m = methodInfo(schema, method);
  let body;
  try {
    body = frame(encode(schema, m.input, request || {}));
  } catch (e) {
    throw new GrpcError(3, e.message, { local: true });
  }
  const headers = {
    'content-type': 'application/grpc-web+proto',
    'x-grpc-web': '1',
    'x-user-agent': 'otc-console',
  };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let resp;
  try {
    resp = await fetch(method, {
      method: 'POST',
      headers,
      body,
      signal: opts.signal,
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    });
  } catch (e) {
    if (opts.signal && opts.signal.aborted) throw new GrpcError(1, 'cancelled', { aborted: true });
    const detail = e && e.message ? e.message : 'request failed';
    throw new GrpcError(14, `network error: ${detail}`, { network: true, i18nKey: 'net.failed', args: { detail } });
  }
  if (resp.status !== 200) {
    try { await resp.body?.cancel(); } catch { /* ignore */ }
    throw httpStatusError(resp.status);
  }
  const decoder = new GrpcWebDecoder(resp.headers);
  return { schema, m, resp, decoder };
}

async function pump(resp, decoder, opts, each) {
  if (!resp.body) {
    for (const p of decoder.push(new Uint8Array(await resp.arrayBuffer()))) each(p);
    return decoder.finish();
  }
  const reader = resp.body.getReader();
  try {
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (e) {
        if (opts.signal && opts.signal.aborted) throw new GrpcError(1, 'cancelled', { aborted: true });
        const detail = e && e.message ? e.message : 'read failed';
        throw new GrpcError(14, `connection lost: ${detail}`, { network: true, i18nKey: 'net.lost', args: { detail } });
      }
      if (chunk.done) break;
      if (opts.onChunk) opts.onChunk();
      for (const p of decoder.push(chunk.value)) each(p);
    }
  } catch (e) {
    try { await reader.cancel(); } catch { /* already closed */ }
    throw e;
  } finally {
    try { reader.releaseLock(); } catch { /* ignore */ }
  }
  return decoder.finish();
}

function decodeOrThrow(schema, type, payload) {
  try {
    return decode(schema, type, payload);
  } catch (e) {
    throw new GrpcError(13, `could not decode ${type}: ${e.message}`, { i18nKey: 'net.decode', args: { type, detail: e.message } });
  }
}

/** A unary call: resolves with the decoded response, rejects with a GrpcError. */
export async function call(method, request, opts = {}) {
  // The server ends a call it has not answered in 30 s (CANCELLED): no
  // answer well after that, or a body that stops coming for as long, means
  // the connection died without a word (a half-open TCP connection), and
  // the call fails as DEADLINE_EXCEEDED, which callers retry, instead of
  // waiting for ever. A large answer still coming in is never cut: the
  // deadline counts silence, from the request and from each piece.
  const deadline = new AbortController();
  const ms = opts.deadlineMs ?? CALL_DEADLINE_MS;
  let timer = setTimeout(() => deadline.abort(), ms);
  const heard = () => {
    clearTimeout(timer);
    timer = setTimeout(() => deadline.abort(), ms);
  };
  const signal = opts.signal ? AbortSignal.any([opts.signal, deadline.signal]) : deadline.signal;
  const mine = { ...opts, signal, onChunk: heard };
  try {
    const { schema, m, resp, decoder } = await open(method, request, mine);
    heard();
    const payloads = [];
    await pump(resp, decoder, mine, (p) => payloads.push(p));
    if (payloads.length !== 1) {
      throw new GrpcError(13, `expected one response message, got ${payloads.length}`, { i18nKey: 'net.oneMessage', args: { n: payloads.length } });
    }
    return decodeOrThrow(schema, m.output, payloads[0]);
  } catch (e) {
    if (deadline.signal.aborted && !(opts.signal && opts.signal.aborted)) {
      const s = Math.max(1, Math.round(ms / 1000));
      throw new GrpcError(4, `nothing heard for ${s} s: the connection may be down`, { network: true, i18nKey: 'net.silent', args: { s } });
    }
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** How long a unary call waits in silence for its answer (past the server's 30 s). */
export const CALL_DEADLINE_MS = 40000;

/**
 * A server-streaming call: onOpen() once the server accepted it, onMessage(obj)
 * per message. Resolves when the stream ends with OK; rejects with a GrpcError.
 */
export async function stream(method, request, opts = {}) {
  const { schema, m, resp, decoder } = await open(method, request, opts);
  if (opts.onOpen) opts.onOpen();
  await pump(resp, decoder, opts, (p) => {
    const msg = decodeOrThrow(schema, m.output, p);
    if (opts.onMessage) opts.onMessage(msg);
  });
}
