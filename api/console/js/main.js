// The console: sign-in, the header (language, time zone, who, sign out),
// navigation by role, and the views.

import {
  ADMIN, answerConfirm, app, clearError, guard, localError, savedToken, saveToken, showError, SUPPORT, VIEWER,
} from './app.js';
import { byId, clear, h, relabel, setLabel } from './dom.js';
import { formatTime, getTimeZone, readJwtPayload, setTimeZone } from './format.js';
import { loadSchema } from './grpcweb.js';
import { getLang, htmlLang, setLang, t } from './i18n.js';
import { initQueueView, queueView, stopQueue } from './view-queue.js';
import { initTradeView, tradeView } from './view-trade.js';
import { anomaliesView, initListViews, mistakesView } from './view-lists.js';
import { adminView, initOfficeViews, statementView } from './view-office.js';

const VIEWS = {
  queue: queueView,
  trade: tradeView,
  anomalies: anomaliesView,
  mistakes: mistakesView,
  statement: statementView,
  admin: adminView,
};

// What each role sees (the server enforces it anyway).
const NAV = {
  [SUPPORT]: ['queue', 'anomalies', 'mistakes', 'statement'],
  [VIEWER]: ['queue', 'anomalies', 'mistakes', 'statement'],
  [ADMIN]: ['mistakes', 'statement', 'admin'],
};

const SECTIONS = ['signin-view', 'role-view', ...Object.values(VIEWS).map((v) => v.section)];

let currentName = null;

function showSection(id) {
  for (const s of SECTIONS) {
    const el = byId(s);
    if (el) el.hidden = s !== id;
  }
}

function allowed(name) {
  const nav = NAV[app.session ? app.session.role : ''] || [];
  if (name === 'trade') return nav.includes('queue');
  return nav.includes(name);
}

async function go(name, arg) {
  if (!app.session || !allowed(name)) return;
  const view = VIEWS[name];
  if (currentName && currentName !== name) VIEWS[currentName].hide();
  currentName = name;
  showSection(view.section);
  for (const b of document.querySelectorAll('#nav button')) {
    const active = b.dataset.view === name || (name === 'trade' && b.dataset.view === 'queue');
    b.classList.toggle('active', active);
    if (active) b.setAttribute('aria-current', 'page');
    else b.removeAttribute('aria-current');
  }
  await view.show(arg);
}

app.go = guard(go);

function renderNav() {
  const nav = clear(byId('nav'));
  for (const name of NAV[app.session ? app.session.role : ''] || []) {
    const b = h('button', { id: `nav-${name}`, class: 'nav-button', data: { view: name }, i18n: `nav.${name}` });
    b.addEventListener('click', () => app.go(name));
    nav.appendChild(b);
  }
}

function renderWho() {
  const who = clear(byId('who'));
  if (!app.session) {
    who.hidden = true;
    delete who.dataset.role;
    delete who.dataset.user;
    return;
  }
  const { role, sub } = app.session;
  who.hidden = false;
  who.dataset.role = role;
  who.dataset.user = sub;
  const known = [SUPPORT, VIEWER, ADMIN].includes(role);
  who.append(
    h('span', { class: `badge role b-${known ? role : 'other'}`, text: role || '?', 'title-i18n': known ? `role.${role}` : null }),
    ' ',
    h('span', { class: 'mono who-id', text: sub || '?' }),
  );
}

/** How long before the token expires the agent is told (to get a new one). */
const EXPIRY_WARNING_MS = 5 * 60 * 1000;
let expiryTimer = null;

/**
 * Tells the agent, from five minutes before, when their token expires: the
 * server then ends every call, and signing in again with a new token is
 * better done between two appeals than in the middle of one.
 */
function watchExpiry() {
  clearTimeout(expiryTimer);
  const el = byId('session-expiry');
  el.hidden = true;
  const exp = Number(app.session && app.session.exp);
  if (!Number.isFinite(exp) || exp <= 0) return;
  const session = app.session;
  const show = () => {
    if (app.session !== session) return;
    setLabel(el, 'session.expiring', { time: formatTime({ seconds: String(exp), nanos: 0 }, getLang()) });
    el.hidden = false;
  };
  const delay = exp * 1000 - EXPIRY_WARNING_MS - Date.now();
  const LONGEST = 0x7fffffff; // a timer's longest wait (24.8 days): then look again
  if (delay <= 0) show();
  else if (delay > LONGEST) expiryTimer = setTimeout(watchExpiry, LONGEST);
  else expiryTimer = setTimeout(show, delay);
}

function signIn(token) {
  const trimmed = String(token || '').trim();
  if (!trimmed) throw localError('signin.empty');
  let claims;
  try {
    claims = readJwtPayload(trimmed);
  } catch {
    throw localError('signin.bad');
  }
  app.session = { token: trimmed, role: claims.role, sub: claims.sub, exp: claims.exp };
  saveToken(trimmed);
  byId('token').value = '';
  byId('sign-out').hidden = false;
  renderWho();
  renderNav();
  watchExpiry();
  const nav = NAV[claims.role];
  if (!nav) {
    setLabel(byId('role-message'), 'role.other', { role: claims.role || '?' });
    showSection('role-view');
    return undefined;
  }
  return go(nav[0]);
}

function signOut(err) {
  answerConfirm(false);
  stopQueue();
  if (currentName) VIEWS[currentName].hide();
  currentName = null;
  app.session = null;
  watchExpiry();
  app.ids.clear();
  saveToken('');
  for (const v of Object.values(VIEWS)) if (v.reset) v.reset();
  clear(byId('nav'));
  renderWho();
  byId('sign-out').hidden = true;
  clearError();
  showSection('signin-view');
  if (err) showError(err);
  byId('token').focus();
}

app.signOut = signOut;

function switchLanguage() {
  setLang(getLang() === 'en' ? 'zh' : 'en');
  applyLanguage();
}

function applyLanguage() {
  document.documentElement.lang = htmlLang();
  document.title = t('app.title');
  relabel(document);
}

function applyZone() {
  const input = byId('tz');
  const value = input.value;
  try {
    input.value = setTimeZone(value);
  } catch {
    input.classList.add('invalid');
    throw localError('tz.invalid', { tz: value });
  }
  input.classList.remove('invalid');
  relabel(document);
}

function boot() {
  window.addEventListener('unhandledrejection', (e) => {
    e.preventDefault();
    showError(e.reason);
  });
  loadSchema().catch(() => { /* reported by the first call */ });
  applyLanguage();
  byId('tz').value = getTimeZone();

  byId('lang').addEventListener('click', switchLanguage);
  const tzApply = guard(applyZone);
  byId('tz-apply').addEventListener('click', tzApply);
  byId('tz').addEventListener('keydown', (e) => {
    if (e.key === 'Enter') tzApply();
  });
  byId('sign-in').addEventListener('click', guard(() => signIn(byId('token').value)));
  byId('token').addEventListener('keydown', (e) => {
    if (e.key === 'Enter') byId('sign-in').click();
  });
  byId('sign-out').addEventListener('click', () => signOut(null));
  byId('error-close').addEventListener('click', clearError);
  byId('confirm-yes').addEventListener('click', () => answerConfirm(true));
  byId('confirm-no').addEventListener('click', () => answerConfirm(false));
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !byId('confirm').hidden) answerConfirm(false);
  });

  initQueueView();
  initTradeView();
  initListViews();
  initOfficeViews();

  const token = savedToken();
  if (token) {
    guard(() => signIn(token))();
  } else {
    showSection('signin-view');
    byId('token').focus();
  }
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
else boot();
