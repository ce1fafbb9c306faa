// The appeal-queue model: pure logic, no DOM, no network.
//
// Appeals are kept oldest first by (opened_at, trade number). `lastSeq` is the
// last event sequence applied; the stream resumes from it, so a reconnect has
// no gap, and replayed events (seq <= lastSeq) are ignored.

const CLOSED = 'APPEAL_STATUS_CLOSED';

function toBig(v) {
  if (typeof v === 'bigint') return v;
  if (v === null || v === undefined || v === '') return 0n;
  return BigInt(v);
}

function tsKey(ts) {
  if (!ts) return [0n, 0];
  return [toBig(ts.seconds ?? 0), Number(ts.nanos ?? 0)];
}

function tradeNo(id) {
  const m = /^T-(\d+)$/.exec(String(id));
  return m ? BigInt(m[1]) : null;
}

/** Compares trade ids: "T-9" < "T-10"; other ids by text. */
export function compareTradeIds(a, b) {
  const na = tradeNo(a);
  const nb = tradeNo(b);
  if (na !== null && nb !== null) return na < nb ? -1 : na > nb ? 1 : 0;
  return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
}

/** Queue order: opened_at, then trade id. */
export function compareAppeals(a, b) {
  const [sa, na] = tsKey(a.opened_at);
  const [sb, nb] = tsKey(b.opened_at);
  if (sa !== sb) return sa < sb ? -1 : 1;
  if (na !== nb) return na < nb ? -1 : 1;
  return compareTradeIds(a.trade_id, b.trade_id);
}

function typeName(t) {
  return String(t).replace(/^EVENT_TYPE_/, '');
}

function stateName(s) {
  return String(s ?? '').replace(/^TRADE_STATE_/, '');
}

export class AppealQueue {
  constructor() {
    this.appeals = [];            // sorted, oldest first
    this.byId = new Map();        // trade id -> appeal
    this.lastSeq = 0n;
    this.pages = 0;
    this.nextPageToken = '';
    this.beyond = new Set();      // open appeals known to exist past the loaded pages
    this.closed = new Set();      // trades whose appeal closed: never re-inserted
  }

  get hasMore() {
    return this.nextPageToken !== '';
  }

  /** How many appeals are known beyond the loaded pages (e.g. opened since). */
  get moreCount() {
    return this.beyond.size;
  }

  get size() {
    return this.appeals.length;
  }

  list() {
    return this.appeals.slice();
  }

  get(tradeId) {
    return this.byId.get(tradeId) || null;
  }

  /**
   * Adds a ListAppeals page. The first page sets lastSeq from as_of_seq.
   * Returns {refetch: [trade ids]}: appeals that were known only from events
   * and are now loaded from a page taken earlier, to be re-read.
   */
  load(page) {
    const first = this.pages === 0;
    this.pages += 1;
    if (first) this.lastSeq = toBig(page.as_of_seq ?? 0);
    const refetch = [];
    for (const a of page.appeals || []) {
      if (this.beyond.delete(a.trade_id)) refetch.push(a.trade_id);
      this.put(a);
    }
    this.nextPageToken = page.next_page_token || '';
    if (!this.hasMore) {
      // Everything the server had is loaded; what we knew beyond is in it or gone.
      for (const id of this.beyond) refetch.push(id);
      this.beyond.clear();
    }
    return { refetch };
  }

  /** The last appeal of the loaded pages (the page boundary), or null. */
  lastLoaded() {
    return this.appeals.length ? this.appeals[this.appeals.length - 1] : null;
  }

  put(appeal) {
    const id = appeal.trade_id;
    if (appeal.status === CLOSED) {
      this.closed.add(id);
      this.removeRow(id);
      return 'removed';
    }
    if (this.closed.has(id)) return 'ignored';
    const had = this.byId.has(id);
    if (had) this.removeRow(id);
    this.byId.set(id, appeal);
    // Binary search for the insertion point.
    let lo = 0;
    let hi = this.appeals.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareAppeals(this.appeals[mid], appeal) < 0) lo = mid + 1;
      else hi = mid;
    }
    this.appeals.splice(lo, 0, appeal);
    return had ? 'updated' : 'inserted';
  }

  removeRow(id) {
    if (!this.byId.has(id)) return false;
    this.byId.delete(id);
    const i = this.appeals.findIndex((a) => a.trade_id === id);
    if (i >= 0) this.appeals.splice(i, 1);
    return true;
  }

  /**
   * Inserts or updates an appeal read with GetAppeal. A closed appeal is
   * removed. While more pages exist on the server, an appeal not loaded that
   * sorts after the last loaded one is not inserted but counted (moreCount).
   * Returns "inserted" | "updated" | "removed" | "counted" | "ignored".
   */
  upsert(appeal) {
    const id = appeal.trade_id;
    if (appeal.status === CLOSED) {
      this.beyond.delete(id);
      return this.put(appeal);
    }
    if (this.closed.has(id)) return 'ignored';
    if (!this.byId.has(id) && this.hasMore) {
      const last = this.lastLoaded();
      if (!last || compareAppeals(appeal, last) > 0) {
        this.beyond.add(id);
        return 'counted';
      }
    }
    return this.put(appeal);
  }

  /** Removes an appeal (resolved, settled). */
  remove(tradeId) {
    this.closed.add(tradeId);
    this.beyond.delete(tradeId);
    return this.removeRow(tradeId);
  }

  /**
   * Applies a StreamAppealQueue event. Returns what the view must do:
   *   {action: "ignore"}                     a duplicate (seq <= lastSeq)
   *   {action: "none"}                       nothing for the queue
   *   {action: "refetch", tradeId}           re-read the appeal (GetAppeal) and upsert it
   *   {action: "remove", tradeId}            it was removed from the model
   *   {action: "anomalies"}                  payment anomalies changed
   *   {action: "mistakes"}                   reconciliation mistakes changed
   */
  applyEvent(event) {
    const seq = toBig(event.seq);
    if (seq <= this.lastSeq) return { action: 'ignore', seq: seq.toString() };
    this.lastSeq = seq;
    const tradeId = event.trade_id || '';
    const base = { seq: seq.toString(), tradeId };
    switch (typeName(event.type)) {
      case 'APPEAL_OPENED':
      case 'APPEAL_CLAIMED':
      case 'APPEAL_UNCLAIMED':
      case 'EVIDENCE_ADDED':
        return tradeId ? { ...base, action: 'refetch' } : { ...base, action: 'none' };
      case 'TRADE_TRANSITIONED':
        if (tradeId && stateName(event.state) === 'APPEALED') return { ...base, action: 'refetch' };
        if (tradeId && stateName(event.from_state) === 'APPEALED') {
          this.remove(tradeId);
          return { ...base, action: 'remove' };
        }
        return { ...base, action: 'none' };
      case 'APPEAL_RESOLVED':
      case 'APPEAL_SETTLED':
        if (!tradeId) return { ...base, action: 'none' };
        this.remove(tradeId);
        return { ...base, action: 'remove' };
      case 'PAYMENT_ANOMALY':
      case 'ANOMALY_RESOLVED':
        return { ...base, action: 'anomalies' };
      case 'RECON_MISTAKE':
      case 'MISTAKE_HANDLED':
      case 'BILL_IMPORTED':
        return { ...base, action: 'mistakes' };
      default:
        return { ...base, action: 'none' };
    }
  }

  /** The after_seq to (re)connect StreamAppealQueue with, as a decimal string. */
  resumeFrom() {
    return this.lastSeq.toString();
  }
}
