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

await section('actors that are not users are shown in the agent\'s language', async () => {
  if (typeof document === 'undefined') return;
  const dom = await import('/js/dom.js');
  const i18n = await import('/js/i18n.js');
  const before = i18n.getLang();
  i18n.setLang('zh');
  try {
    const cells = ['system', 'gateway', 'reconciliation'].map((a) => dom.idCell(a));
    eq(cells.map((c) => c.textContent), ['系统', '支付网关', '对账'], 'labels in 中文');
    eq(cells.map((c) => c.title), ['system', 'gateway', 'reconciliation'], 'the server\'s name in the title');
    eq(dom.idCell('gateway sandbox-hmac').textContent, '支付网关 sandbox-hmac', 'the gateway with its channel');
    const user = dom.idCell('user:0190a3c4-0000-7000-8000-000000000001');
    eq(user.textContent, 'user:0190a3c4-0000-7000-8000-000000000001', 'a user id is shown as it is');
  } finally {
    i18n.setLang(before);
  }
});
