/**
 * A relay connection for dApps: publish with OK handling, subscriptions that resume by the
 * relay's arrival-sequence cursor after a disconnect (no gap, no duplicate), NIP-42 AUTH with a
 * signer, automatic reconnection with backoff. Uses the browser's WebSocket, Node's global one
 * (Node >= 22, or 20 with --experimental-websocket), or the `WebSocket` constructor given.
 *
 * Cursor mode (`afterSeq` given) follows the Rust SDK (device-sdk/src/client/connection.rs):
 * every filter gets `"after_seq": <last seq delivered>` and `"limit": pageLimit`; stored events
 * are held until EOSE and delivered in seq order; a full page is delivered up to its
 * `pageLimit`-th smallest seq and the next page asked for; live events follow EOSE. Each event is
 * delivered once per subscription (ids are remembered), and after a reconnect the subscription
 * resumes from the highest seq delivered.
 */

import { DephyError } from './errors.js';
import { authEvent } from './signer.js';
import { verifyEvent } from './event.js';

const MAX_REMEMBERED_IDS = 20000;

/** One subscription; created by `RelayClient.subscribe`. */
class Subscription {
  constructor(client, id, filters, options) {
    this.client = client;
    this.id = id;
    this.filters = filters;
    this.cursor = options.afterSeq !== undefined && options.afterSeq !== null;
    /** The highest arrival sequence delivered (cursor mode). */
    this.position = this.cursor ? Number(options.afterSeq) : null;
    this.pageLimit = options.pageLimit ?? 500;
    this.onEvent = options.onEvent ?? (() => {});
    this.onEose = options.onEose ?? (() => {});
    this.onClosed = options.onClosed ?? (() => {});
    this.verify = options.verify ?? true;
    this.generation = 0;
    this.reqId = null;
    this.stored = [];
    this.live = false;
    this.everLive = false;
    this.closed = false;
    this.seen = new Set();
    this.seenOrder = [];
  }

  /** Sends the REQ from the current position (on each (re)connection and each page). */
  send() {
    this.generation += 1;
    this.reqId = `${this.id}:${this.generation}`;
    this.stored = [];
    this.live = false;
    const filters = this.filters.map((f) => (this.cursor ? { ...f, after_seq: this.position, limit: this.pageLimit } : f));
    this.client._send(['REQ', this.reqId, ...filters]);
  }

  _remember(id) {
    if (this.seen.has(id)) return false;
    this.seen.add(id);
    this.seenOrder.push(id);
    if (this.seenOrder.length > MAX_REMEMBERED_IDS) this.seen.delete(this.seenOrder.shift());
    return true;
  }

  _deliver(event, seq) {
    if (seq !== null && seq !== undefined && (this.position === null || seq > this.position)) this.position = seq;
    if (!this._remember(event.id)) return;
    try {
      this.onEvent(event, seq ?? null);
    } catch (e) {
      this.client._report(e);
    }
  }

  _onEvent(event, meta) {
    const seq = meta && Number.isSafeInteger(meta.seq) ? meta.seq : null;
    if (this.cursor && seq === null) {
      this.client._report(new DephyError('NoCursor', `the relay did not send an arrival sequence with an event of subscription ${this.id}; it does not offer the after_seq cursor`));
      return;
    }
    if (this.live) this._deliver(event, seq);
    else this.stored.push([event, seq]);
  }

  _onEose() {
    const stored = this.stored;
    this.stored = [];
    if (this.cursor) {
      stored.sort((a, b) => a[1] - b[1]);
      if (stored.length >= this.pageLimit) {
        const cutoff = stored[this.pageLimit - 1][1];
        for (const [event, seq] of stored) if (seq <= cutoff) this._deliver(event, seq);
        this.client._send(['CLOSE', this.reqId]);
        this.send();
        return;
      }
    }
    for (const [event, seq] of stored) this._deliver(event, seq);
    const first = !this.everLive;
    this.live = true;
    this.everLive = true;
    try {
      this.onEose({ first, position: this.position });
    } catch (e) {
      this.client._report(e);
    }
  }

  /** Stops the subscription (sends CLOSE). */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.client.subscriptions.delete(this.id);
    if (this.reqId) this.client._send(['CLOSE', this.reqId]);
  }
}

/**
 * `new RelayClient(url, options)`: `options.WebSocket` (constructor), `options.signer` (NIP-07
 * shape, for NIP-42 AUTH: authenticates when the relay sends a challenge and retries what the
 * relay refused with `auth-required:`), `options.reconnect` (default true),
 * `options.backoff` `{ minMs = 250, maxMs = 10000 }`, `options.publishTimeoutMs` (10000),
 * `options.connectTimeoutMs` (10000),
 * `options.onNotice(text)`, `options.onError(error)`, `options.onStatus(status)` with status
 * 'connecting' | 'open' | 'authenticated' | 'disconnected' | 'closed'.
 */
export class RelayClient {
  constructor(url, options = {}) {
    if (typeof url !== 'string' || !/^wss?:\/\//i.test(url)) throw new DephyError('BadUrl', `relay URL ${JSON.stringify(url)} must start with ws:// or wss://`);
    this.url = url;
    this.options = options;
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this.WebSocket !== 'function') {
      throw new DephyError('NoWebSocket', 'no WebSocket constructor: pass options.WebSocket, or use a browser, Node >= 22, or Node 20 with --experimental-websocket');
    }
    this.signer = options.signer ?? null;
    this.reconnect = options.reconnect ?? true;
    this.minBackoff = options.backoff?.minMs ?? 250;
    this.maxBackoff = options.backoff?.maxMs ?? 10000;
    this.publishTimeoutMs = options.publishTimeoutMs ?? 10000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10000;
    this.subscriptions = new Map();
    this.pendingOk = new Map();
    this.authenticated = null;
    this.challenge = null;
    this.authPending = null;
    this.waitingForAuth = [];
    this.ws = null;
    this.closedByUser = false;
    this.nextSub = 0;
    this.attempt = 0;
    this.timer = null;
    this.openWaiters = [];
    this.inbox = Promise.resolve();
    /** Number of connections opened so far (1 after the first connect, +1 per reconnect). */
    this.connections = 0;
  }

  _status(status) {
    this.status = status;
    try {
      this.options.onStatus?.(status);
    } catch (e) {
      this._report(e);
    }
  }

  _report(error) {
    if (this.options.onError) this.options.onError(error);
  }

  /** Opens the connection; resolves once it is open (rejects if the first attempt fails and reconnect is off). */
  connect() {
    this.closedByUser = false;
    if (this.ws && this.ws.readyState === 1) return Promise.resolve();
    const opened = new Promise((resolve, reject) => this.openWaiters.push({ resolve, reject }));
    if (!this.ws || this.ws.readyState > 1) this._open();
    return opened;
  }

  _open() {
    this._status('connecting');
    let ws;
    try {
      ws = new this.WebSocket(this.url);
    } catch (e) {
      this._onDisconnect(new DephyError('Connect', `cannot connect to ${this.url}: ${e.message}`));
      return;
    }
    this.ws = ws;
    // Some WebSocket implementations (Node 20's) fire only `error`, never `close`, when the
    // connection cannot be made; a connection that does not open in time is given up too.
    let ended = false;
    const end = (why) => {
      if (ended || this.ws !== ws) return;
      ended = true;
      clearTimeout(openTimer);
      try {
        ws.close();
      } catch {
        // already closing
      }
      this._onDisconnect(new DephyError('Disconnected', `connection to ${this.url} ${why}`));
    };
    const openTimer = setTimeout(() => end(`did not open within ${this.connectTimeoutMs} ms`), this.connectTimeoutMs);
    ws.onopen = () => {
      if (this.ws !== ws || ended) return;
      clearTimeout(openTimer);
      this.attempt = 0;
      this.connections += 1;
      this.authenticated = null;
      this.challenge = null;
      this._status('open');
      for (const w of this.openWaiters.splice(0)) w.resolve();
      for (const sub of this.subscriptions.values()) sub.send();
      // Events published while disconnected, or not acknowledged before the cut.
      for (const pending of this.pendingOk.values()) {
        if (pending.needsResend && pending.event) {
          pending.needsResend = false;
          this._send(['EVENT', pending.event]);
        }
      }
    };
    ws.onmessage = (msg) => {
      if (this.ws !== ws || ended) return;
      const text = typeof msg.data === 'string' ? msg.data : String(msg.data);
      // One message at a time, in order (verification is async).
      this.inbox = this.inbox.then(() => this._onMessage(text)).catch((e) => this._report(e));
    };
    ws.onclose = () => end('closed');
    ws.onerror = () => {
      if (ws.readyState !== 1) end('failed');
    };
  }

  _onDisconnect(error) {
    this.ws = null;
    this.authenticated = null;
    this.authPending = null;
    for (const [id, pending] of this.pendingOk) {
      if (pending.event) {
        // Not acknowledged on this connection: publish again after reconnecting.
        pending.needsResend = true;
      } else {
        // An AUTH answer cannot come any more: the next connection has a new challenge.
        clearTimeout(pending.timer);
        this.pendingOk.delete(id);
        pending.reject(new DephyError('Disconnected', `connection to ${this.url} closed before the relay answered AUTH`));
      }
    }
    if (this.closedByUser) {
      this._status('closed');
      return;
    }
    this._status('disconnected');
    if (!this.reconnect) {
      for (const w of this.openWaiters.splice(0)) w.reject(error);
      for (const [id, pending] of this.pendingOk) {
        clearTimeout(pending.timer);
        pending.reject(error);
        this.pendingOk.delete(id);
      }
      return;
    }
    const delay = Math.min(this.maxBackoff, this.minBackoff * 2 ** Math.min(this.attempt, 16));
    this.attempt += 1;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.closedByUser) this._open();
    }, delay);
  }

  _send(message) {
    if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify(message));
  }

  /** Drops the current connection as a network failure would (it reconnects if `reconnect`). */
  dropConnection() {
    if (this.ws) this.ws.close();
  }

  /** Closes for good. */
  close() {
    this.closedByUser = true;
    if (this.timer) clearTimeout(this.timer);
    for (const sub of [...this.subscriptions.values()]) sub.close();
    for (const [id, pending] of this.pendingOk) {
      clearTimeout(pending.timer);
      pending.reject(new DephyError('Closed', 'the client was closed before the relay answered'));
      this.pendingOk.delete(id);
    }
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      try {
        ws.close();
      } catch {
        // already closing
      }
    }
    this._status('closed');
  }

  /**
   * Authenticates (NIP-42) with the signer and the relay's challenge; resolves to the
   * authenticated pubkey. Waits for the challenge if it has not arrived yet.
   */
  authenticate() {
    if (!this.signer) return Promise.reject(new DephyError('NoSigner', 'the relay requires authentication (NIP-42): pass options.signer'));
    if (this.authenticated) return Promise.resolve(this.authenticated);
    if (!this.authPending) {
      const attempt = (async () => {
        const challenge = this.challenge ?? (await new Promise((resolve) => this.waitingForAuth.push(resolve)));
        const event = await authEvent(this.signer, this.url, challenge);
        const result = await this._publishRaw(['AUTH', event], event.id);
        if (!result.accepted) throw new DephyError('AuthRefused', `the relay refused authentication: ${result.message}`);
        this.authenticated = event.pubkey;
        this._status('authenticated');
        return event.pubkey;
      })();
      this.authPending = attempt;
      attempt.catch((e) => {
        if (this.authPending === attempt) this.authPending = null;
        this._report(e);
      });
    }
    return this.authPending;
  }

  _publishRaw(message, id, event) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pendingOk.delete(id);
        reject(new DephyError('Timeout', `the relay did not answer ${message[0]} ${id} within ${this.publishTimeoutMs} ms`));
      }, this.publishTimeoutMs);
      const open = this.ws && this.ws.readyState === 1;
      this.pendingOk.set(id, { resolve, reject, timer, event: message[0] === 'EVENT' ? event : null, needsResend: !open });
      if (open) this._send(message);
    });
  }

  /**
   * Publishes a signed event; resolves to `{ accepted, message }` from the relay's OK
   * (`duplicate:` counts as accepted). With a signer, an `auth-required:` refusal triggers
   * NIP-42 AUTH and one retry. Rejects with `DephyError('Timeout')` without an answer. Events
   * sent while disconnected are sent once the connection is back.
   */
  async publish(event) {
    let result = await this._publishRaw(['EVENT', event], event.id, event);
    if (!result.accepted && result.message.startsWith('auth-required:') && this.signer) {
      await this.authenticate();
      result = await this._publishRaw(['EVENT', event], event.id, event);
    }
    return result;
  }

  /**
   * Opens a subscription. `options`: `afterSeq` (cursor mode from that arrival sequence, e.g. 0
   * for everything stored; omit for a plain NIP-01 subscription), `pageLimit` (500),
   * `onEvent(event, seq)`, `onEose({ first, position })` (after each catch-up), `onClosed(reason)`
   * (the relay closed it for good), `verify` (check ids and signatures, default true).
   * Returns the subscription: `position` (highest seq delivered), `close()`.
   */
  subscribe(filters, options = {}) {
    if (!Array.isArray(filters) || filters.length === 0) throw new DephyError('BadArgument', 'filters must be a non-empty array of NIP-01 filters');
    this.nextSub += 1;
    const sub = new Subscription(this, `sub${this.nextSub}`, filters, options);
    this.subscriptions.set(sub.id, sub);
    if (this.ws && this.ws.readyState === 1) sub.send();
    return sub;
  }

  _subFor(reqId) {
    if (typeof reqId !== 'string') return null;
    const sub = this.subscriptions.get(reqId.split(':')[0]);
    return sub && sub.reqId === reqId ? sub : null;
  }

  async _onMessage(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (!Array.isArray(msg)) return;
    switch (msg[0]) {
      case 'EVENT': {
        const sub = this._subFor(msg[1]);
        if (!sub) return;
        const event = msg[2];
        if (sub.verify) {
          try {
            await verifyEvent(event);
          } catch (e) {
            this._report(new DephyError('BadEvent', `ignoring an event with a bad id or signature: ${e.message}`));
            return;
          }
        }
        sub._onEvent(event, msg[3]);
        return;
      }
      case 'EOSE': {
        const sub = this._subFor(msg[1]);
        if (sub) sub._onEose();
        return;
      }
      case 'CLOSED': {
        const sub = this._subFor(msg[1]);
        if (!sub) return;
        const reason = String(msg[2] ?? '');
        if (reason.startsWith('auth-required:') && this.signer) {
          this.authenticate().then(
            () => {
              if (!sub.closed) sub.send();
            },
            (e) => sub.onClosed(`auth failed: ${e.message}`),
          );
          return;
        }
        this.subscriptions.delete(sub.id);
        sub.closed = true;
        sub.onClosed(reason);
        return;
      }
      case 'OK': {
        const pending = this.pendingOk.get(msg[1]);
        if (!pending) return;
        const message = String(msg[3] ?? '');
        if (!msg[2] && pending.event && (message.startsWith('rate-limited:') || message.startsWith('error:')) && (pending.retries ?? 0) < 5) {
          // Transient: the relay asks to retry later (a few times, then the refusal stands).
          pending.retries = (pending.retries ?? 0) + 1;
          setTimeout(() => this._send(['EVENT', pending.event]), 500 * pending.retries);
          return;
        }
        clearTimeout(pending.timer);
        this.pendingOk.delete(msg[1]);
        pending.resolve({ accepted: msg[2] === true || message.startsWith('duplicate:'), message });
        return;
      }
      case 'AUTH': {
        if (typeof msg[1] !== 'string') return;
        this.challenge = msg[1];
        for (const resolve of this.waitingForAuth.splice(0)) resolve(msg[1]);
        if (this.signer && this.options.autoAuth !== false) this.authenticate().catch(() => {});
        return;
      }
      case 'NOTICE':
        this.options.onNotice?.(String(msg[1]));
        return;
      default:
    }
  }
}
