// Request ids for mutating calls (pure logic, no DOM).
//
// Each user action gets a fresh id. When the same action (same method, same
// parameters) is retried after an outcome we could not see (a network error,
// UNAVAILABLE…), the id is reused, so the server's idempotency makes the retry
// safe: it cannot act twice. A success or a definite refusal forgets the id.

import { isAmbiguous } from './grpcweb.js';

/** A v4 UUID: crypto.randomUUID where available (secure contexts), else from getRandomValues. */
export function uuid() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  const b = new Uint8Array(16);
  c.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function stable(v) {
  if (v instanceof Uint8Array) return { bytes: Array.from(v) };
  if (Array.isArray(v)) return v.map(stable);
  if (v && typeof v === 'object') {
    const out = {};
    for (const k of Object.keys(v).sort()) out[k] = stable(v[k]);
    return out;
  }
  return typeof v === 'bigint' ? v.toString() : v;
}

/** The identity of an action: its method and parameters (without request_id). */
export function actionKey(method, params) {
  const { request_id: _ignored, ...rest } = params || {};
  return JSON.stringify([method, stable(rest)]);
}

/**
 * The object an action changes (a trade, an anomaly, a recon mistake), or
 * null. Once any action on an object succeeds, an unsure earlier try on it is
 * history: clicking that action again is a new intent, not a retry.
 */
export function subjectOf(params) {
  for (const field of ['trade_id', 'anomaly_id', 'mistake_id']) {
    const v = params && params[field];
    if (typeof v === 'string' && v !== '') return `${field}:${v}`;
  }
  return null;
}

/** How long an unsure try's id is reused: a retry is a click soon after. */
export const RETRY_WINDOW_MS = 60_000;

export class RequestIds {
  constructor(make = uuid, now = () => Date.now(), windowMs = RETRY_WINDOW_MS) {
    this.make = make;
    this.now = now;
    this.windowMs = windowMs;
    this.pending = new Map(); // key -> {id, at}
  }

  /**
   * The id to send for this action: the pending one of an unsure earlier try
   * made within the retry window, or a fresh one. (Later, the same click is a
   * new action: claim, hand back, claim again must claim again.)
   */
  idFor(method, params) {
    const key = actionKey(method, params);
    const now = this.now();
    const p = this.pending.get(key);
    if (p && now - p.at < this.windowMs) return p.id;
    const id = this.make();
    this.pending.set(key, { id, at: now, subject: subjectOf(params) });
    return id;
  }

  /**
   * Records the outcome: forget the id unless the error leaves the outcome
   * unknown. A success also forgets the unsure tries of other actions on the
   * same object (claim unsure, hand back done, claim again: a new claim, not
   * a replay of the first one's stored reply).
   */
  settle(method, params, err) {
    const key = actionKey(method, params);
    if (err && isAmbiguous(err)) return;
    this.pending.delete(key);
    const subject = subjectOf(params);
    if (err || subject === null) return;
    for (const [k, p] of this.pending) {
      if (p.subject === subject) this.pending.delete(k);
    }
  }

  /** Runs `send(requestWithId)` for an action with the right id. */
  async run(method, params, send) {
    const id = this.idFor(method, params);
    try {
      const result = await send({ ...params, request_id: id });
      this.settle(method, params, null);
      return result;
    } catch (e) {
      this.settle(method, params, e);
      throw e;
    }
  }

  clear() {
    this.pending.clear();
  }
}
