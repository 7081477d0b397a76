/**
 * The page's WebSocket to its relay (NIP-01), with NIP-42 authentication through a NIP-07
 * signer (`window.nostr`) when the relay asks for it, and reconnection with backoff. On
 * reconnect every subscription is sent again; consumers deduplicate by event id.
 */

import { relayWsUrl } from './api.js';

const MAX_BACKOFF_MS = 15000;

export class RelaySocket {
  /** `onState(text, kind)` reports the connection state for the page header. */
  constructor(onState, onAuthProblem) {
    this.onState = onState;
    this.onAuthProblem = onAuthProblem;
    this.subs = new Map();
    this.ws = null;
    this.backoff = 500;
    this.challenge = null;
    this.authed = false;
    this.retried = new Set();
  }

  connect() {
    const ws = new WebSocket(relayWsUrl());
    this.ws = ws;
    this.onState('connecting…', 'wait');
    ws.onopen = () => {
      this.backoff = 500;
      this.retried = new Set();
      this.onState('live', 'ok');
      for (const [id, sub] of this.subs) this.sendReq(id, sub.filters);
    };
    ws.onmessage = (m) => this.onMessage(m.data);
    ws.onclose = () => {
      this.authed = false;
      this.onState(`disconnected; reconnecting in ${Math.round(this.backoff / 1000)} s`, 'bad');
      setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
    };
  }

  /** Subscribes; `onEvent(event)` for every event, `onEose()` once stored events are sent. */
  subscribe(id, filters, onEvent, onEose = () => {}) {
    this.subs.set(id, { filters, onEvent, onEose });
    if (this.ws?.readyState === WebSocket.OPEN) this.sendReq(id, filters);
  }

  sendReq(id, filters) {
    this.ws.send(JSON.stringify(['REQ', id, ...filters]));
  }

  onMessage(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (!Array.isArray(msg)) return;
    const [type, a, b] = msg;
    if (type === 'EVENT') this.subs.get(a)?.onEvent(b);
    else if (type === 'EOSE') this.subs.get(a)?.onEose();
    // Remember the challenge; sign it only when the relay refuses a read without it (so a
    // signer extension is not asked on relays that do not need it).
    else if (type === 'AUTH' && typeof a === 'string') this.challenge = a; else if (type === 'CLOSED' && typeof b === 'string' && b.startsWith('auth-required')) {
      // Reads need NIP-42: sign the challenge (if we can) and ask again.
      // Once per subscription and connection: a relay that still refuses is reported, not retried.
      if (this.retried.has(a)) {
        this.onAuthProblem(`The relay refused the subscription after authentication: ${b}`);
        return;
      }
      this.retried.add(a);
      this.authenticate(true).then((ok) => {
        if (ok && this.subs.has(a)) this.sendReq(a, this.subs.get(a).filters);
      });
    } else if (type === 'OK' && this.pendingAuth && a === this.pendingAuth.id) {
      this.authed = b === true;
      if (!this.authed) this.onAuthProblem(`The relay refused our authentication: ${msg[3] || 'no reason given'}`);
      this.pendingAuth.resolve(this.authed);
      this.pendingAuth = null;
    }
  }

  /**
   * Answers the relay's AUTH challenge with a kind-22242 event signed by the NIP-07 signer.
   * Without a signer, says what is needed when `required`. Resolves to whether the relay accepted it.
   */
  async authenticate(required) {
    if (this.authed) return true;
    if (this.authing) return this.authing;
    this.authing = this.signChallenge(required).finally(() => {
      this.authing = null;
    });
    return this.authing;
  }

  async signChallenge(required) {
    const signer = globalThis.nostr;
    if (!signer || typeof signer.signEvent !== 'function') {
      if (required) {
        this.onAuthProblem(
          'This relay serves events only to authenticated clients (NIP-42). Install or enable a NIP-07 signer ' +
            'extension (one that provides window.nostr, e.g. nos2x or Alby) with a key the relay allows, then reload.',
        );
      }
      return false;
    }
    if (!this.challenge) return false;
    try {
      const event = await signer.signEvent({
        kind: 22242,
        created_at: Math.floor(Date.now() / 1000),
        tags: [['relay', relayWsUrl()], ['challenge', this.challenge]],
        content: '',
      });
      // Wait for the relay's OK (bounded) before asking again.
      const answered = new Promise((resolve) => {
        this.pendingAuth = { id: event.id, resolve };
        setTimeout(() => resolve(false), 10000);
      });
      this.ws.send(JSON.stringify(['AUTH', event]));
      return await answered;
    } catch (e) {
      this.onAuthProblem(`The NIP-07 signer did not sign the authentication: ${e.message || e}`);
      return false;
    }
  }
}
