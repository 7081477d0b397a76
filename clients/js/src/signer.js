/**
 * Signers: the NIP-07 shape `{ getPublicKey(): Promise<hex>, signEvent(template): Promise<event> }`
 * (a browser extension's `window.nostr` has it), an in-memory one over a secret key, and the
 * NIP-42 AUTH (kind 22242) and NIP-98 HTTP auth (kind 27235) events made with them.
 */

import { base64 } from '@scure/base';

import { utf8 } from './bytes.js';
import { DephyError } from './errors.js';
import { finalizeEvent, getPublicKey } from './event.js';

/** A NIP-07-shaped signer over an in-memory secret key (Uint8Array or 64 hex). */
export function secretKeySigner(secretKey) {
  const pubkey = getPublicKey(secretKey);
  return {
    getPublicKey: async () => pubkey,
    signEvent: (template) => finalizeEvent(template, secretKey),
  };
}

function checkSigner(signer) {
  if (!signer || typeof signer.signEvent !== 'function') throw new DephyError('BadArgument', 'signer must have signEvent(template) -> Promise<event> (NIP-07 shape)');
}

/** The signed NIP-42 AUTH event for `relayUrl` and `challenge`. */
export async function authEvent(signer, relayUrl, challenge) {
  checkSigner(signer);
  return signer.signEvent({
    kind: 22242,
    created_at: Math.floor(Date.now() / 1000),
    tags: [
      ['relay', relayUrl],
      ['challenge', challenge],
    ],
    content: '',
  });
}

/**
 * The NIP-98 `Authorization` header value (`Nostr <base64 event>`) for `method` on the absolute
 * `url` (query included), as the relay's `/events` and `/sessions/...` need with read auth on.
 */
export async function nip98Header(signer, url, method = 'GET') {
  checkSigner(signer);
  const event = await signer.signEvent({
    kind: 27235,
    created_at: Math.floor(Date.now() / 1000),
    tags: [
      ['u', url],
      ['method', method],
    ],
    content: '',
  });
  return `Nostr ${base64.encode(utf8(JSON.stringify(event)))}`;
}
