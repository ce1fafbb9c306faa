// UI labels in English and 中文. Both dictionaries have the same keys.
// t(key, {name: value}) fills "{name}" placeholders. The language is kept in
// localStorage "otc.lang". No DOM here (dom.js re-applies labels).

import { en } from './lang-en.js';
import { zh } from './lang-zh.js';

export { en, zh };

const LANG_KEY = 'otc.lang';

export const dictionaries = { en, zh };
export const LANGS = ['en', 'zh'];

function storage() {
  try {
    return globalThis.localStorage || null;
  } catch {
    return null;
  }
}

// English unless the agent chose otherwise (kept in localStorage).
function initialLang() {
  const saved = storage()?.getItem(LANG_KEY);
  return saved && LANGS.includes(saved) ? saved : 'en';
}

let lang = initialLang();

export function getLang() {
  return lang;
}

/** The BCP 47 tag for <html lang>. */
export function htmlLang() {
  return lang === 'zh' ? 'zh-CN' : 'en';
}

export function setLang(next) {
  if (!LANGS.includes(next)) throw new Error(`unknown language ${next}`);
  lang = next;
  try {
    storage()?.setItem(LANG_KEY, next);
  } catch { /* storage disabled */ }
  return lang;
}

export function hasKey(key) {
  return Object.prototype.hasOwnProperty.call(en, key);
}

/** The label of `key` in the current language, with "{name}" filled from args. */
export function t(key, args, forLang = lang) {
  const dict = dictionaries[forLang] || en;
  let s = Object.prototype.hasOwnProperty.call(dict, key) ? dict[key] : (hasKey(key) ? en[key] : key);
  if (args) {
    s = s.replace(/\{(\w+)\}/g, (m, name) => (Object.prototype.hasOwnProperty.call(args, name) ? String(args[name]) : m));
  }
  return s;
}

/** The label key of an enum value name (TRADE_STATE_PAID, WRONG_AMOUNT…). */
export function enumKey(value) {
  return `enum.${value}`;
}

/** An enum value's label, or the value itself when it has none (an unknown number, a new kind). */
export function enumLabel(value) {
  const key = enumKey(value);
  return hasKey(key) ? t(key) : String(value);
}
