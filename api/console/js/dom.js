// DOM helpers. Every piece of text goes in as a text node; attributes go
// through setAttribute with a guard (no event-handler attributes, links and
// images only to blob: URLs this page made). There is no HTML parsing here.

import { enumKey, getLang, hasKey, t } from './i18n.js';
import { durationLabel, formatTime, getTimeZone, isoTime } from './format.js';

const i18nArgs = new WeakMap();
const tsValue = new WeakMap();

function safeAttr(el, name, value) {
  const n = String(name).toLowerCase();
  if (n.startsWith('on') || n === 'style' || n === 'srcdoc') throw new Error(`attribute ${name} is not allowed`);
  if ((n === 'href' || n === 'src') && !String(value).startsWith('blob:')) {
    throw new Error(`${name} must be a blob: URL`);
  }
  el.setAttribute(name, String(value));
}

/**
 * h('tr', {class: 'row', data: {trade: 'T-1'}}, child, 'text', ...)
 * attrs: class, id, text (textContent), i18n (label key), args, data {..}, hidden,
 * disabled, checked, value, and plain attributes.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
      else if (k === 'text') el.textContent = String(v);
      else if (k === 'i18n') setLabel(el, v, attrs.args);
      else if (k === 'args') continue;
      else if (k === 'data') for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = String(dv);
      else if (k === 'value') el.value = String(v);
      else if (k === 'checked' || k === 'disabled' || k === 'hidden') el[k] = Boolean(v);
      else if (k === 'placeholder-i18n') {
        el.dataset.i18nPlaceholder = v;
        el.placeholder = t(v);
      } else if (k === 'title-i18n') {
        el.dataset.i18nTitle = v;
        el.title = t(v);
      } else safeAttr(el, k, v === true ? '' : v);
    }
  }
  append(el, children);
  if (tag === 'button' && !el.hasAttribute('type')) el.type = 'button';
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export function byId(id) {
  return document.getElementById(id);
}

/** Gives an element a translated label that follows language switches. */
export function setLabel(el, key, args) {
  el.dataset.i18n = key;
  if (args) i18nArgs.set(el, args);
  else i18nArgs.delete(el);
  el.textContent = t(key, args);
  return el;
}

/** A <span> label. */
export function label(key, args) {
  return setLabel(document.createElement('span'), key, args);
}

/** A duration in seconds, in the chosen language ("—" for none). */
export function durationEl(secs) {
  const l = durationLabel(secs);
  const el = document.createElement('span');
  if (l) setLabel(el, l.key, l.args);
  else el.textContent = '—';
  return el;
}

/** A <time> for a Timestamp, in the chosen zone and language. */
export function timeEl(ts) {
  const el = document.createElement('time');
  el.className = 'ts';
  tsValue.set(el, ts || null);
  el.dataset.ts = '1';
  const iso = isoTime(ts);
  if (iso) el.setAttribute('datetime', iso);
  el.textContent = formatTime(ts, getLang(), getTimeZone());
  return el;
}

function badgeClass(value) {
  return /^[A-Za-z0-9_]+$/.test(value) ? `b-${value.toLowerCase()}` : '';
}

/** A badge for an enum value or a server kind string (label when known, raw text otherwise). */
export function badge(value, extraClass) {
  const v = String(value ?? '');
  const el = document.createElement('span');
  el.className = ['badge', badgeClass(v), extraClass].filter(Boolean).join(' ');
  el.dataset.value = v;
  const key = enumKey(v);
  if (hasKey(key)) setLabel(el, key);
  else el.textContent = v === '' ? '—' : v;
  return el;
}

/** Text or a dash; server strings only ever as text. */
export function textOr(v, dash = '—') {
  const s = v === null || v === undefined ? '' : String(v);
  return document.createTextNode(s === '' ? dash : s);
}

/** Re-applies every label, placeholder, title and time under `root` (language or zone change). */
export function relabel(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) {
    el.textContent = t(el.dataset.i18n, i18nArgs.get(el));
  }
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll('[data-i18n-aria]')) el.setAttribute('aria-label', t(el.dataset.i18nAria));
  const lang = getLang();
  const zone = getTimeZone();
  for (const el of root.querySelectorAll('time[data-ts]')) {
    if (tsValue.has(el)) el.textContent = formatTime(tsValue.get(el), lang, zone);
  }
}

/** A table with translated column heads; returns {table, tbody}. */
export function table(id, heads, extraClass) {
  const tbody = h('tbody');
  const tableEl = h('table', { id, class: ['grid', extraClass] },
    h('thead', null, h('tr', null, heads.map((k) => h('th', { i18n: k })))),
    tbody);
  return { table: tableEl, tbody };
}

/** A <dl> of label/value pairs: [[key, node|string], ...]; values with a `field` name get data-field. */
export function fieldList(pairs, extraClass) {
  const dl = h('dl', { class: ['fields', extraClass] });
  for (const [key, value, field] of pairs) {
    dl.appendChild(h('dt', { i18n: key }));
    const dd = h('dd', field ? { data: { field } } : null);
    append(dd, [value instanceof Node ? value : textOr(value)]);
    dl.appendChild(dd);
  }
  return dl;
}

/** The actors that are not a user, as the server names them. */
const NON_USER_ACTORS = ['system', 'gateway', 'reconciliation'];

/** Shortens a UUID-bearing actor ("buyer:3f2a…") for tight cells; the full text goes in title.
 * An actor that is not a user (the system, the gateway, reconciliation) is shown in the agent's language. */
export function idCell(text, me) {
  const s = String(text ?? '');
  if (NON_USER_ACTORS.includes(s)) {
    return h('span', { class: 'id actor', title: s, data: { actor: s }, i18n: `actor.${s}` });
  }
  // A trade's timeline names the gateway by its channel: "gateway <channel>".
  const channel = /^gateway (\S+)$/.exec(s);
  if (channel) {
    return h('span', { class: 'id actor', title: s, data: { actor: 'gateway' } },
      h('span', { i18n: 'actor.gateway' }), ' ', channel[1]);
  }
  const el = h('span', { class: 'id', title: s || null });
  el.textContent = s === '' ? '—' : s;
  if (me && s !== '' && s.endsWith(me)) {
    el.classList.add('me');
    el.appendChild(document.createTextNode(' '));
    el.appendChild(h('span', { class: 'badge b-me', i18n: 'who.me' }));
  }
  return el;
}
