// Evidence and chat attachments: fetched with GetAttachment, shown inline only
// when they are PNG, JPEG or WebP images (an <img> of a Blob of that type);
// anything else is a download link to an application/octet-stream Blob, never
// rendered by the browser. Links and images only use blob: URLs made here.

import { errorText, rpc, showError, SUPPORT_SVC } from './app.js';
import { h, label } from './dom.js';
import { formatBytes } from './format.js';

const INLINE = new Set(['image/png', 'image/jpeg', 'image/webp']);

let urls = [];
let cache = new Map(); // "trade|id" -> Promise<{url, image, fileName, contentType, size}>
let generation = 0;

export function isInlineImage(contentType) {
  return INLINE.has(String(contentType || '').split(';')[0].trim().toLowerCase());
}

/** Forgets every attachment and revokes its object URL (leaving a trade). */
export function releaseAttachments() {
  generation += 1;
  for (const u of urls) URL.revokeObjectURL(u);
  urls = [];
  cache = new Map();
}

function fetchAttachment(tradeId, attachmentId) {
  const key = `${tradeId}|${attachmentId}`;
  let p = cache.get(key);
  if (!p) {
    const gen = generation;
    p = rpc(`${SUPPORT_SVC}GetAttachment`, { trade_id: tradeId, attachment_id: attachmentId }).then((a) => {
      const image = isInlineImage(a.content_type);
      const type = image ? a.content_type.split(';')[0].trim().toLowerCase() : 'application/octet-stream';
      const url = URL.createObjectURL(new Blob([a.data], { type }));
      if (gen === generation) urls.push(url);
      else URL.revokeObjectURL(url);
      return { url, image, fileName: a.file_name, contentType: a.content_type, size: a.data.length, gen };
    });
    p.catch(() => cache.delete(key));
    cache.set(key, p);
  }
  return p;
}

// The extension a file of each allowed type is saved with (the first one
// when the name has none of them).
const EXTENSIONS = {
  'application/pdf': ['.pdf'],
  'image/png': ['.png'],
  'image/jpeg': ['.jpg', '.jpeg'],
  'image/webp': ['.webp'],
};

/**
 * The name an attachment is shown and saved under: the uploader's base name
 * without control or bidirectional-override characters (U+202E makes
 * "x\u202Efdp.exe" read as "xexe.pdf"), ending in the extension of the type the
 * server checked the bytes against, so what the agent saves opens as what it
 * is ("x.exe" declared as a PDF is saved as "x.exe.pdf").
 */
export function safeFileName(name, contentType, fallback) {
  const base = String(name || '').split(/[\\/]/).pop()
    .replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '')
    .trim() || String(fallback || 'attachment');
  const type = String(contentType || '').split(';')[0].trim().toLowerCase();
  const exts = EXTENSIONS[type] || ['.bin'];
  const lower = base.toLowerCase();
  return exts.some((x) => lower.endsWith(x) && lower.length > x.length) ? base : `${base}${exts[0]}`;
}

/**
 * A placeholder for an attachment that fills itself in: <img class="attachment-img">
 * or <a class="attachment-file" download="<name>">. `info` is the AttachmentInfo.
 */
export function attachmentNode(tradeId, attachmentId, info) {
  const holder = h('div', { class: 'attachment loading', data: { attachment: attachmentId } });
  const name = safeFileName(info && info.file_name, info && info.content_type, attachmentId);
  holder.appendChild(h('span', { class: 'muted' }, label('attachment.loading'), ' ', name));
  fetchAttachment(tradeId, attachmentId).then((a) => {
    if (a.gen !== generation) return;
    holder.replaceChildren();
    holder.classList.remove('loading');
    if (a.image) {
      const img = h('img', { class: 'attachment-img', src: a.url, alt: name });
      const open = h('a', { class: 'attachment-open', href: a.url, target: '_blank', rel: 'noopener noreferrer' }, img);
      holder.appendChild(open);
      holder.appendChild(h('div', { class: 'attachment-caption' }, name, ' · ', formatBytes(a.size)));
    } else {
      const link = h('a', { class: 'attachment-file', href: a.url, download: name, rel: 'noopener' },
        label('attachment.download'), ' ', name);
      holder.appendChild(link);
      holder.appendChild(h('span', { class: 'muted' }, ' ', String(a.contentType || '?'), ' · ', formatBytes(a.size)));
    }
  }, (e) => {
    holder.replaceChildren();
    holder.classList.remove('loading');
    holder.classList.add('failed');
    holder.appendChild(h('span', { class: 'error-inline' }, name, ': ', e.codeName || 'ERROR', ' ', errorText(e)));
    showError(e);
  });
  return holder;
}
