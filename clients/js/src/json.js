/**
 * `JSON.parse` without losing integers: integer literals beyond 2^53-1 (DePHY's u64 nonces and
 * namespace ids, i64 deadlines and tokens can be) come back as bigints instead of rounded numbers.
 */

/**
 * Parses `text` like JSON.parse; unsafe integer literals become bigints. With `integersOnly`,
 * numbers written with a fraction or exponent (`12.0`, `1e3`) become `{ nonInteger: '<text>' }`,
 * so that integer fields can refuse them as serde does. Throws SyntaxError.
 */
export function parseJsonLossless(text, { integersOnly = false } = {}) {
  const markers = new Map();
  const nonce = Math.random().toString(36).slice(2) + Date.now().toString(36);
  let out = '';
  let i = 0;
  let last = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      // Skip the string, honouring escapes.
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      i++;
      continue;
    }
    if (c === '-' || (c >= '0' && c <= '9')) {
      let j = i + 1;
      while (j < text.length && /[0-9eE.+-]/.test(text[j])) j++;
      const token = text.slice(i, j);
      const integer = /^-?(0|[1-9][0-9]*)$/.test(token);
      if ((integer && !Number.isSafeInteger(Number(token))) || (!integer && integersOnly)) {
        const marker = `\u0000number:${nonce}:${markers.size}`;
        markers.set(marker, integer ? BigInt(token) : { nonInteger: token });
        out += text.slice(last, i) + JSON.stringify(marker);
        last = j;
      }
      i = j;
      continue;
    }
    i++;
  }
  if (markers.size === 0) return JSON.parse(text);
  out += text.slice(last);
  return JSON.parse(out, (_key, value) => (typeof value === 'string' && markers.has(value) ? markers.get(value) : value));
}
