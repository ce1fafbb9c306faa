// ------------------------------------------------------------------ DOM safety (in the page)

await section('DOM helpers keep server text as text', async () => {
  if (typeof document === 'undefined') return;
  const dom = await import('/js/dom.js');
  const { isInlineImage } = await import('/js/attachments.js');
  // Built in pieces so that no literal event-handler attribute appears in this file.
  const hostile = `<img src=x ${'on'}error="window.__pwned=1"><script>window.__pwned=1</script>`;
  const el = dom.h('span', { text: hostile });
  eq([el.childElementCount, el.textContent], [0, hostile], 'text stays text');
  const el2 = dom.h('div', null, hostile, dom.badge(hostile));
  eq(el2.querySelectorAll('img,script').length, 0, 'no elements from text children or badges');
  throws(() => dom.h('a', { href: 'javascript:alert(1)' }), /blob/, 'links only to blob: URLs');
  throws(() => dom.h('div', { onclick: 'x()' }), /not allowed/, 'no event-handler attributes');
  ok([isInlineImage('image/png'), isInlineImage('image/jpeg'), isInlineImage('IMAGE/WEBP')].every(Boolean), 'PNG, JPEG and WebP are shown inline');
  ok(![isInlineImage('image/svg+xml'), isInlineImage('text/html'), isInlineImage('application/pdf'), isInlineImage('')].some(Boolean), 'SVG, HTML, PDF are not');
  ok(window.__pwned === undefined, 'nothing ran');
});
