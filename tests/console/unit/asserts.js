// Unit tests of the web console's logic, run inside the console page by the
// Rust browser test (`api_console.rs`): the files of this folder, joined in
// the order it names, are the body of one async function, so each file sees
// what the earlier ones declared:
//   (async () => { const fixtures = arguments[0]; <the files> })()
// `fixtures` = {tradeB64, trade}: a prost-encoded otc.v1.Trade and the same
// trade as JSON. The Rust side appends `return { passed, failures };`.
//
// This file: the console's modules and the assertions.

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

