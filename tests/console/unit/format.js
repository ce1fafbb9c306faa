// ------------------------------------------------------------------ i18n

await section('i18n', () => {
  const enKeys = Object.keys(i18n.en).sort();
  const zhKeys = Object.keys(i18n.zh).sort();
  eq(enKeys.filter((k) => !(k in i18n.zh)), [], 'every English key has a Chinese label');
  eq(zhKeys.filter((k) => !(k in i18n.en)), [], 'every Chinese key has an English label');
  eq(enKeys.filter((k) => typeof i18n.en[k] !== 'string' || i18n.en[k].trim() === ''), [], 'no empty English label');
  eq(zhKeys.filter((k) => typeof i18n.zh[k] !== 'string' || i18n.zh[k].trim() === ''), [], 'no empty Chinese label');
  const params = (s) => (s.match(/\{\w+\}/g) || []).sort().join(',');
  eq(enKeys.filter((k) => params(i18n.en[k]) !== params(i18n.zh[k])), [], 'both languages use the same placeholders');
  eq([i18n.t('queue.title', null, 'en'), i18n.t('queue.title', null, 'zh')], ['Appeal queue', '申诉队列'], 'queue title in both languages');
  eq(i18n.t('trade.title', { id: 'T-7' }, 'zh'), '订单 T-7', 'placeholders are filled');
  const missing = [];
  for (const e of ['otc.v1.TradeState', 'otc.v1.AppealStatus', 'otc.v1.Resolution', 'otc.v1.PaymentKind', 'otc.v1.EventType']) {
    for (const name of Object.values(schema.enums[e] || {})) if (!i18n.hasKey(i18n.enumKey(name))) missing.push(name);
  }
  for (const k of ['WRONG_AMOUNT', 'PAID_AFTER_CANCEL', 'ALREADY_ENDED', 'UNKNOWN_REFERENCE', 'PAID_TWICE',
    'MISSING_HERE', 'MISSING_THERE', 'AMOUNT_MISMATCH', 'STATUS_MISMATCH', 'REFERENCE_MISMATCH']) {
    if (!i18n.hasKey(i18n.enumKey(k))) missing.push(k);
  }
  eq(missing, [], 'every enum value shown has a label');
  eq(i18n.enumLabel('SOMETHING_NEW'), 'SOMETHING_NEW', 'an unknown value shows as itself');
});

// ------------------------------------------------------------------ time, JWT

await section('time formatting', () => {
  const instant = ts(1700000000, 123000000); // 2023-11-14T22:13:20.123Z
  const utc = fmt.formatTime(instant, 'en', 'UTC');
  const sh = fmt.formatTime(instant, 'en', 'Asia/Shanghai');
  eq(utc, '2023-11-14 22:13:20', 'UTC');
  eq(sh, '2023-11-15 06:13:20', 'Asia/Shanghai');
  const hour = (s) => Number(s.slice(11, 13)) + 24 * Number(s.slice(8, 10));
  eq(hour(sh) - hour(utc), 8, 'Shanghai is 8 hours ahead of UTC');
  eq(fmt.formatTime(instant, 'zh', 'Asia/Shanghai'), '2023-11-15 06:13:20', 'the same in Chinese');
  eq(fmt.formatTime(ts(0), 'en', 'UTC'), '—', 'seconds "0" is unset');
  eq(fmt.formatTime(null, 'en', 'UTC'), '—', 'null is unset');
  eq(fmt.formatTime(ts('-86400'), 'en', 'UTC'), '1969-12-31 00:00:00', 'before the epoch');
  ok(fmt.isValidTimeZone('Asia/Shanghai') && fmt.isValidTimeZone('UTC'), 'valid zones');
  ok(!fmt.isValidTimeZone('Mars/Olympus_Mons') && !fmt.isValidTimeZone(''), 'invalid zones');
  const before = fmt.getTimeZone();
  const stored = localStorage.getItem('otc.tz');
  throws(() => fmt.setTimeZone('Mars/Olympus_Mons'), /Mars\/Olympus_Mons/, 'an invalid zone is refused, naming it');
  eq(fmt.getTimeZone(), before, 'a refused zone changes nothing');
  eq(fmt.setTimeZone('Asia/Shanghai'), 'Asia/Shanghai', 'a valid zone is taken');
  eq(localStorage.getItem('otc.tz'), 'Asia/Shanghai', 'the zone is kept in localStorage otc.tz');
  fmt.setTimeZone(before);
  if (stored === null) localStorage.removeItem('otc.tz');
  else localStorage.setItem('otc.tz', stored);
  const dur = (secs, lang) => {
    const l = fmt.durationLabel(secs);
    return l ? i18n.t(l.key, l.args, lang) : null;
  };
  eq([dur('3725', 'en'), dur(250, 'en'), dur('9', 'en'), dur('0', 'en')], ['1h 02m', '4m 10s', '9s', null], 'durations');
  eq([dur('3725', 'zh'), dur(250, 'zh'), dur('9', 'zh')], ['1 小时 02 分', '4 分 10 秒', '9 秒'], 'durations in 中文');
});

function b64url(s) {
  return fmt.bytesToBase64(utf8(s)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

await section('lists page by the server\'s bound', async () => {
  if (typeof document === 'undefined') return;
  const { pageSize } = await import('/js/app.js');
  eq(await pageSize(), 150, 'the server runs with --page-size-max 150');
  eq(await pageSize(), 150, 'read once, then kept');
});

await section('notes take as much as the server does', async () => {
  if (typeof document === 'undefined') return;
  const { boundNote, limits } = await import('/js/app.js');
  eq((await limits()).textCharsMax, 3000, 'the server runs with --text-chars-max 3000');
  const note = boundNote(document.createElement('textarea'));
  await limits();
  eq(note.dataset.charsMax, '3000', 'a note input\'s bound follows the server');
  note.value = '😀'.repeat(3000);
  note.dispatchEvent(new Event('input'));
  eq([...note.value].length, 3000, 'an emoji counts once, as on the server');
  note.value += 'x';
  note.setSelectionRange(note.value.length, note.value.length);
  note.dispatchEvent(new Event('input'));
  eq([...note.value].length, 3000, 'a character past the bound is refused');
  eq(note.value.endsWith('😀'), true, 'what was typed last gave way');
});

await section('an edit is cut back to the bound as the server counts', () => {
  eq(fmt.clampAtCaret('ab😀', 4, 3), { value: 'ab😀', caret: 4 }, 'within the bound: three characters, four units');
  eq(fmt.clampAtCaret('ab😀c', 3, 3), { value: 'abc', caret: 2 }, 'a caret inside a pair stands after it: the pair goes whole');
  eq(fmt.clampAtCaret('ab😀c', 5, 3), { value: 'ab😀', caret: 4 }, 'typed at the end: the new character goes');
  eq(fmt.clampAtCaret('aXYb', 3, 2), { value: 'ab', caret: 1 }, 'pasted in the middle: the pasted characters go');
  eq(fmt.clampAtCaret('😀😀😀', 0, 1), { value: '😀', caret: 0 }, 'nothing before the caret: the end goes');
  eq(fmt.clampAtCaret('', 0, 5), { value: '', caret: 0 }, 'empty');
});

await section('statement CSV', () => {
  const s = {
    asset: 'EB', date: '2026-12-01', opening: '100', deposits: '12.50', withdrawals: '2.5',
    released_to_buyers: '0.00000001', returned_to_sellers: '0', closing: '110.00000001',
    balances: '110.00000001', balanced: true,
  };
  eq(fmt.statementCsv(s),
    'asset,date,opening,deposits,withdrawals,released_to_buyers,returned_to_sellers,closing,balances,balanced\r\n'
    + 'EB,2026-12-01,100,12.50,2.5,0.00000001,0,110.00000001,110.00000001,true\r\n',
    'the header and one row, amounts as the server wrote them');
  eq(fmt.statementCsv({ ...s, asset: 'a,"b"', balanced: false }).split('\r\n')[1].slice(0, 9),
    '"a,""b"""', 'a cell with a comma or quote is quoted');
});

await section('what reorders or hides text is shown', () => {
  eq(fmt.showInvisible('\u202E4321'), '⟦U+202E⟧4321', 'a right-to-left override');
  eq(fmt.showInvisible('王\u200B芳'), '王⟦U+200B⟧芳', 'a zero-width space');
  eq(fmt.showInvisible('a\u{E0041}b\u3164'), 'a⟦U+E0041⟧b⟦U+3164⟧', 'a tag and a Hangul filler');
  eq(fmt.showInvisible('1\u206A2\uFFA0'), '1⟦U+206A⟧2⟦U+FFA0⟧', 'a deprecated format character and a halfwidth filler');
  eq(fmt.showInvisible('wang@example.com 王芳·李'), 'wang@example.com 王芳·李', 'ordinary text unchanged');
  eq(fmt.showInvisible(undefined), '', 'nothing');
});

await section('JWT payload', () => {
  const sub = '3f2a6c1e-1111-4222-8333-944445555666';
  const token = `${b64url('{"alg":"HS256","typ":"JWT"}')}.${b64url(JSON.stringify({ sub, role: 'support_viewer', exp: 2000000000, name: '客服 ✓?>' }))}.c2ln`;
  const p = fmt.readJwtPayload(token);
  eq([p.role, p.sub, p.exp], ['support_viewer', sub, 2000000000], 'role, sub and exp');
  eq(p.claims.name, '客服 ✓?>', 'UTF-8 claims (base64url with - and _)');
  const loud = `x.${b64url(JSON.stringify({ sub: sub.toUpperCase().replace(/-/g, ''), role: 'support', exp: 1 }))}.c2ln`;
  eq(fmt.readJwtPayload(loud).sub, sub, 'a sub the server accepts in another form reads as the server writes ids');
  for (const form of [sub.toUpperCase(), `{${sub}}`, `urn:uuid:${sub}`, sub.replace(/-/g, '')]) {
    eq(fmt.canonicalUuid(form), sub, `canonical from ${form}`);
  }
  eq(fmt.canonicalUuid('not-a-uuid'), 'not-a-uuid', 'anything else is left as it is');
  throws(() => fmt.readJwtPayload('abc'), /JWT/, 'one part is not a JWT');
  throws(() => fmt.readJwtPayload('a.b'), /JWT/, 'two parts are not a JWT');
  throws(() => fmt.readJwtPayload('a.!!!.c'), /JWT/, 'a bad payload is not a JWT');
  throws(() => fmt.readJwtPayload(`a.${b64url('[1]')}.c`), /JWT/, 'a non-object payload is not a JWT');
});

