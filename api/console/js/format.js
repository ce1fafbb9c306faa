// Formatting: times in the agent's time zone, durations, and reading a JWT's
// payload for display. Amounts are never parsed: they are shown exactly as the
// server sent them. No DOM here.

const TZ_KEY = 'otc.tz';

function storage() {
  try {
    return globalThis.localStorage || null;
  } catch {
    return null;
  }
}

/** Whether Intl knows the IANA time zone `tz`. */
export function isValidTimeZone(tz) {
  if (typeof tz !== 'string' || tz.trim() === '') return false;
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz.trim() });
    return true;
  } catch {
    return false;
  }
}

export function defaultTimeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

let currentZone = null;

/** The chosen zone: localStorage `otc.tz` when valid, else the browser's. */
export function getTimeZone() {
  if (currentZone) return currentZone;
  const saved = storage()?.getItem(TZ_KEY);
  currentZone = saved && isValidTimeZone(saved) ? saved : defaultTimeZone();
  return currentZone;
}

/** Sets and keeps the zone; throws an Error naming an invalid zone. */
export function setTimeZone(tz) {
  const zone = typeof tz === 'string' ? tz.trim() : '';
  if (!isValidTimeZone(zone)) {
    const err = new Error(`unknown time zone: ${JSON.stringify(String(tz ?? ''))}`);
    err.zone = String(tz ?? '');
    throw err;
  }
  currentZone = new Intl.DateTimeFormat('en', { timeZone: zone }).resolvedOptions().timeZone;
  try {
    storage()?.setItem(TZ_KEY, currentZone);
  } catch { /* storage full or disabled: keep it for this page */ }
  return currentZone;
}

/** Milliseconds since the epoch for a Timestamp {seconds, nanos}, or null when unset. */
export function timestampMillis(ts) {
  if (!ts || typeof ts !== 'object') return null;
  const secs = Number(ts.seconds ?? 0);
  const nanos = Number(ts.nanos ?? 0);
  if (!Number.isFinite(secs) || (secs === 0 && nanos === 0) || String(ts.seconds ?? '0') === '0') return null;
  const ms = secs * 1000 + Math.floor(nanos / 1e6);
  return Math.abs(ms) <= 8.64e15 ? ms : null;
}

const formatters = new Map();

function formatter(lang, timeZone) {
  const key = `${lang}|${timeZone}`;
  let f = formatters.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat(lang === 'zh' ? 'zh-CN' : 'en-GB', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
      numberingSystem: 'latn',
    });
    formatters.set(key, f);
  }
  return f;
}

/**
 * "YYYY-MM-DD HH:mm:ss" of a google.protobuf.Timestamp in `timeZone`;
 * "—" when unset (null, or seconds "0").
 */
export function formatTime(ts, lang = 'en', timeZone = getTimeZone()) {
  const ms = timestampMillis(ts);
  if (ms === null) return '—';
  const parts = {};
  for (const p of formatter(lang, timeZone).formatToParts(new Date(ms))) parts[p.type] = p.value;
  const hour = parts.hour === '24' ? '00' : parts.hour;
  return `${parts.year}-${parts.month}-${parts.day} ${hour}:${parts.minute}:${parts.second}`;
}

/** ISO 8601 (UTC) for a <time datetime>, or "" when unset. */
export function isoTime(ts) {
  const ms = timestampMillis(ts);
  return ms === null ? '' : new Date(ms).toISOString();
}

/**
 * A short duration for seconds given as a number or decimal string, as a
 * label {key, args} ("1h 05m", "4m 10s", "10s" in English), or null for none.
 */
export function durationLabel(secs) {
  const n = Number(secs);
  if (!Number.isFinite(n) || n <= 0) return null;
  const h = Math.floor(n / 3600);
  const m = Math.floor((n % 3600) / 60);
  const s = Math.floor(n % 60);
  const two = (x) => String(x).padStart(2, '0');
  if (h > 0) return { key: 'dur.hm', args: { h, m: two(m) } };
  if (m > 0) return { key: 'dur.ms', args: { m, s: two(s) } };
  return { key: 'dur.s', args: { s } };
}

/** Today's date in UTC as YYYY-MM-DD. */
export function todayUtc(now = new Date()) {
  return now.toISOString().slice(0, 10);
}

function base64UrlToBytes(s) {
  if (!/^[A-Za-z0-9_-]*={0,2}$/.test(s)) throw new Error('not base64url');
  let b64 = s.replace(/=+$/, '').replace(/-/g, '+').replace(/_/g, '/');
  while (b64.length % 4) b64 += '=';
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * A UUID as the server writes it (lowercase, hyphenated), from any form the
 * server accepts in a token's `sub` (upper case, no hyphens, braces, a
 * `urn:uuid:` prefix), so the agent's own id compares equal to ids in
 * replies. Anything else is returned as it is.
 */
export function canonicalUuid(s) {
  let t = String(s).trim().toLowerCase();
  if (t.startsWith('urn:uuid:')) t = t.slice(9);
  if (t.startsWith('{') && t.endsWith('}')) t = t.slice(1, -1);
  const hex = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(t) ? t.replace(/-/g, '') : t;
  if (!/^[0-9a-f]{32}$/.test(hex)) return s;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * The payload of a JWT, for DISPLAY only (the server verifies the signature
 * and enforces the role). Throws an Error when it is not a JWT.
 */
export function readJwtPayload(token) {
  const parts = typeof token === 'string' ? token.trim().split('.') : [];
  if (parts.length !== 3 || parts[1] === '') throw new Error('not a JWT (expected three dot-separated parts)');
  let payload;
  try {
    payload = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(base64UrlToBytes(parts[1])));
  } catch {
    throw new Error('not a JWT (the payload is not base64url JSON)');
  }
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
    throw new Error('not a JWT (the payload is not a JSON object)');
  }
  return {
    role: typeof payload.role === 'string' ? payload.role : '',
    sub: typeof payload.sub === 'string' ? canonicalUuid(payload.sub) : '',
    exp: typeof payload.exp === 'number' ? payload.exp : null,
    claims: payload,
  };
}

/** Base64 (standard) of bytes, and back; used for tests and fixtures. */
export function bytesToBase64(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

export function base64ToBytes(b64) {
  const bin = atob(String(b64).replace(/\s+/g, ''));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** A human size for a byte count given as a number or decimal string. */
export function formatBytes(n) {
  const v = Number(n);
  if (!Number.isFinite(v) || v < 0) return String(n);
  if (v < 1024) return `${v} B`;
  if (v < 1024 * 1024) return `${(v / 1024).toFixed(1)} KiB`;
  return `${(v / 1024 / 1024).toFixed(1)} MiB`;
}

/** The statement's columns in its CSV, as `otcctl statement` writes them. */
export const STATEMENT_CSV_COLUMNS = [
  'asset', 'date', 'opening', 'deposits', 'withdrawals', 'released_to_buyers',
  'returned_to_sellers', 'closing', 'balances', 'balanced',
];

/**
 * A daily statement as CSV (SPEC §20): a header and one row, amounts as
 * the server's decimal strings (never numbers), CRLF line ends; a cell with
 * a comma, quote or line break is quoted.
 */
export function statementCsv(s) {
  const cell = (v) => {
    const text = typeof v === 'boolean' ? String(v) : String(v ?? '');
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  const row = STATEMENT_CSV_COLUMNS.map((c) => cell(s[c])).join(',');
  return `${STATEMENT_CSV_COLUMNS.join(',')}\r\n${row}\r\n`;
}

/**
 * Characters that reorder or hide text: controls, direction marks and
 * overrides, zero-width and blank-looking ones (soft hyphen, fillers,
 * variation selectors, line separators, tags).
 */
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u115f\u1160\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\u{e0000}-\u{e007f}]/gu;

/**
 * `text` with every character that reorders or hides text shown as a
 * visible ⟦U+XXXX⟧: what an agent compares with a payment screenshot (a
 * holder, bank or account) reads as it was typed, not as it displays
 * ("\u202E4321" would show as "1234").
 */
export function showInvisible(text) {
  return String(text ?? '').replace(INVISIBLE, (c) => `⟦U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}⟧`);
}


/**
 * An edit cut back to `max` characters as the server counts them (code
 * points: an emoji is one, where `maxlength` counts two UTF-16 units).
 * What was just typed or pasted, the characters before the caret, gives
 * way, as `maxlength` refuses an insertion: {value, caret} (a UTF-16 offset).
 */
export function clampAtCaret(value, caret, max) {
  const s = String(value ?? '');
  if (s.length <= max) return { value: s, caret };
  // A caret between the halves of a pair stands after it.
  const low = s.charCodeAt(caret);
  if (caret > 0 && low >= 0xdc00 && low <= 0xdfff) caret += 1;
  let before = [...s.slice(0, caret)];
  let after = [...s.slice(caret)];
  let excess = before.length + after.length - max;
  if (excess <= 0) return { value: s, caret };
  const cut = Math.min(excess, before.length);
  before = before.slice(0, before.length - cut);
  excess -= cut;
  if (excess > 0) after = after.slice(0, after.length - excess);
  const head = before.join('');
  return { value: head + after.join(''), caret: head.length };
}
