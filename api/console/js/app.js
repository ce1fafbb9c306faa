// Shared state of the running console: the session, calls with the token,
// request ids, the error banner and the confirmation dialog.

import { CALL_DEADLINE_MS, call } from './grpcweb.js';
import { RequestIds } from './requests.js';
import { byId, clear, h, label, setLabel } from './dom.js';
import { t } from './i18n.js';
import { clampAtCaret } from './format.js';

const TOKEN_KEY = 'otc.token';

export const app = {
  session: null,          // {token, role, sub, exp}
  ids: new RequestIds(),
  go: () => {},           // set by main.js: go(viewName, arg)
  signOut: () => {},      // set by main.js: signOut(errorOrNull)
};

/** The page size the console asks for, unless the server allows less. */
const PAGE_SIZE = 200;
/** The longest note, unless the server says otherwise (`--text-chars-max`). */
const TEXT_CHARS_MAX = 2000;
let limitsPromise = null;

/**
 * The server's limits the console follows, read once from /limits.json (a
 * failed read is tried again): `pageSize`, 200 or the server's
 * `--page-size-max` when it is lower, and `textCharsMax`, the longest note.
 */
export function limits() {
  if (!limitsPromise) {
    // Bounded as a call is (a dead connection: the defaults).
    const signal = AbortSignal.timeout(CALL_DEADLINE_MS);
    const positive = (n) => Number.isInteger(n) && n > 0;
    limitsPromise = fetch('/limits.json', { cache: 'no-cache', credentials: 'same-origin', signal })
      .then((r) => {
        if (!r.ok) throw new Error(`/limits.json: HTTP ${r.status}`);
        return r.json();
      })
      .then((l) => {
        const max = Number(l && l.page_size_max);
        const chars = Number(l && l.text_chars_max);
        return {
          pageSize: positive(max) ? Math.min(PAGE_SIZE, max) : PAGE_SIZE,
          textCharsMax: positive(chars) ? chars : TEXT_CHARS_MAX,
        };
      })
      .catch(() => {
        limitsPromise = null;
        return { pageSize: PAGE_SIZE, textCharsMax: TEXT_CHARS_MAX };
      });
  }
  return limitsPromise;
}

/** The page size for list calls (see `limits`). */
export function pageSize() {
  return limits().then((l) => l.pageSize);
}

/**
 * Bounds a note input as the server bounds notes: at most the server's
 * `--text-chars-max` characters once known (the server checks it in any
 * case), counted as the server counts them, so an emoji is one, not the two
 * `maxlength` would count. Register it before the view's own `input`
 * listeners: they see the value cut back.
 */
export function boundNote(input) {
  let max = TEXT_CHARS_MAX;
  const clamp = () => {
    const caret = input.selectionEnd ?? input.value.length;
    const next = clampAtCaret(input.value, caret, max);
    if (next.value === input.value) return;
    input.value = next.value;
    input.setSelectionRange(next.caret, next.caret);
  };
  // Not while an IME composes (pinyin): the composed text is cut once it lands.
  input.addEventListener('input', (e) => { if (!e.isComposing) clamp(); });
  input.addEventListener('compositionend', clamp);
  limits().then((l) => {
    max = l.textCharsMax;
    input.dataset.charsMax = String(max);
    clamp();
  });
  return input;
}

export const SUPPORT = 'support';
export const VIEWER = 'support_viewer';
export const ADMIN = 'admin';

export function role() {
  return app.session ? app.session.role : '';
}

/** Whether the signed-in user may act (claim, resolve, close…): role support only. */
export function canAct() {
  return role() === SUPPORT;
}

export function savedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

export function saveToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch { /* storage disabled: the session lasts for this page only */ }
}

/** A call with the session's token. */
export function rpc(method, request, opts = {}) {
  return call(method, request, { ...opts, token: app.session ? app.session.token : '' });
}

export const SUPPORT_SVC = '/otc.v1.SupportService/';
export const ADMIN_SVC = '/otc.v1.AdminService/';

/** A mutating call: request_id chosen per action, reused when retrying an unsure outcome. */
export function mutate(method, params) {
  return app.ids.run(method, params, (req) => rpc(method, req));
}

// ------------------------------------------------------------------ errors

// What the banner shows, when a background load put it there ('queue',
// 'stream', 'trade'): that load clears it once it succeeds. A failure the
// agent caused (an action) has no source and stays until dismissed.
let bannerSource = null;

export function clearError() {
  bannerSource = null;
  const box = byId('error');
  if (!box) return;
  box.hidden = true;
  clear(byId('error-text'));
  delete box.dataset.code;
}

/** Clears the banner if it shows a failure of `source`, since recovered from. */
export function clearErrorFrom(source) {
  if (bannerSource !== null && bannerSource === source) clearError();
}

/**
 * Shows a failed call (status name and message, as text) in #error; `source`
 * names the background load it came from, if any (see clearErrorFrom).
 */
export function showError(err, source = null) {
  if (!err) return;
  if (err.aborted) return;
  if (err.codeName === 'UNAUTHENTICATED' && app.session) {
    app.signOut(err);
    return;
  }
  const box = byId('error');
  const text = byId('error-text');
  if (!box || !text) return;
  clear(text);
  if (err.codeName) {
    text.appendChild(h('strong', { class: 'code', text: err.codeName }));
    text.appendChild(document.createTextNode(': '));
    // The server's words as it sent them; this page's own in the agent's language.
    text.appendChild(err.i18nKey ? label(err.i18nKey, err.args) : document.createTextNode(err.message || ''));
    box.dataset.code = err.codeName;
  } else if (err.i18nKey) {
    text.appendChild(label(err.i18nKey, err.args));
    box.dataset.code = 'LOCAL';
  } else {
    text.appendChild(document.createTextNode(String(err.message || err)));
    box.dataset.code = 'ERROR';
  }
  box.hidden = false;
  bannerSource = source;
}

/** An error's message as text: the server's words as it sent them, this
 * page's own in the agent's language. */
export function errorText(err) {
  if (!err) return '';
  return err.i18nKey ? t(err.i18nKey, err.args) : String(err.message || '');
}

/** An error of this page (not from the server), with a translated message. */
export function localError(key, args) {
  const e = new Error(t(key, args));
  e.i18nKey = key;
  e.args = args;
  return e;
}

/** Wraps a user action: clears the banner, shows any failure; never rejects. */
export function guard(fn) {
  return async (...args) => {
    clearError();
    try {
      return await fn(...args);
    } catch (e) {
      showError(e);
      return undefined;
    }
  };
}

/** Runs `fn` with `button` disabled (no double submits). */
export async function busy(button, fn) {
  if (button) button.disabled = true;
  try {
    return await fn();
  } finally {
    if (button && button.isConnected) button.disabled = false;
  }
}

// ------------------------------------------------------------------ confirmation

let pendingConfirm = null;

/**
 * Shows #confirm with a title key and lines [[labelKey, value], ...];
 * resolves true for #confirm-yes, false for #confirm-no / Escape.
 */
export function confirmDialog(titleKey, lines, yesKey = 'confirm.yes') {
  if (pendingConfirm) pendingConfirm(false);
  const box = byId('confirm');
  setLabel(byId('confirm-title'), titleKey);
  setLabel(byId('confirm-yes'), yesKey);
  const body = clear(byId('confirm-text'));
  for (const [key, value] of lines) {
    const shown = value instanceof Node ? value : (value === '' || value === undefined || value === null ? '—' : String(value));
    body.appendChild(h('div', { class: 'confirm-line' },
      h('span', { class: 'confirm-key', i18n: key }),
      h('span', { class: 'confirm-value' }, shown)));
  }
  box.hidden = false;
  byId('confirm-no').focus();
  return new Promise((resolve) => {
    pendingConfirm = (answer) => {
      pendingConfirm = null;
      box.hidden = true;
      resolve(answer);
    };
  });
}

export function answerConfirm(answer) {
  if (pendingConfirm) pendingConfirm(answer);
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
