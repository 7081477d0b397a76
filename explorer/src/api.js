/**
 * The relay's HTTP API as the page uses it: same-origin JSON GETs with bounded waits and errors
 * that say what failed, and the NIP-11 document (the relay's public key, name, limits).
 */

/** Longest any HTTP request may take. */
const TIMEOUT_MS = 15000;

export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** GETs `path` (same origin) and parses JSON; throws HttpError with the relay's message. */
export async function getJson(path, headers = {}) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
  try {
    const resp = await fetch(path, { headers: { Accept: 'application/json', ...headers }, signal: ctl.signal, cache: 'no-store' });
    const text = await resp.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
    if (!resp.ok) throw new HttpError(resp.status, body?.error || `${path}: HTTP ${resp.status}`);
    if (body === null) throw new HttpError(resp.status, `${path}: not JSON`);
    return body;
  } catch (e) {
    if (e.name === 'AbortError') throw new HttpError(0, `${path}: no answer within ${TIMEOUT_MS / 1000} s`);
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** GETs `path` as text (for /metrics). */
export async function getText(path) {
  const resp = await fetch(path, { cache: 'no-store' });
  if (!resp.ok) throw new HttpError(resp.status, `${path}: HTTP ${resp.status}`);
  return resp.text();
}

let info;
/** The relay's NIP-11 document (cached). */
export async function relayInfo() {
  info ??= getJson('/', { Accept: 'application/nostr+json' });
  return info;
}

/** The relay's WebSocket URL: this page's origin, ws(s). */
export function relayWsUrl() {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`;
}
