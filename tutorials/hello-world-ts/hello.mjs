// DePHY hello world with nostr-tools (see ../hello-world-ts.md): a throwaway device key subscribes
// to its own DePHY events (kind 1573, session `hello_session`, p-tagged to itself), publishes one
// signed Status event in DePHY's wire format, and prints it when the relay sends it back.
//
// Plain ES module with JSDoc types (Node 20 cannot strip TypeScript types; `tsc --checkJs` can
// check this file). Node < 22 needs `--experimental-websocket` for the global WebSocket.
//
// Run: npm install && node --experimental-websocket hello.mjs ws://127.0.0.1:8000
import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';
import * as nip19 from 'nostr-tools/nip19';

/** DePHY's event kind. */
const DEPHY_KIND = 1573;
const SESSION = 'hello_session';
const TIMEOUT_MS = 30_000;

/**
 * The content of a DePHY Status event: serde's externally tagged JSON, payload a JSON *string*.
 * @param {'Available' | 'Working'} status
 * @param {'UserRequest' | 'AdminRequest' | 'UserBehaviour' | 'Reset' | 'LockFailed'} reason
 * @param {string} initialRequest 64 hex characters
 * @param {string} payload
 * @returns {string}
 */
function statusContent(status, reason, initialRequest, payload) {
  return JSON.stringify({ Status: { status, reason, initial_request: initialRequest, payload } });
}

/** @param {string} msg */
function fail(msg) {
  console.error(`hello-world-ts: error: ${msg}`);
  process.exit(1);
}

/**
 * @template T
 * @param {Promise<T>} promise
 * @param {string} what
 * @returns {Promise<T>}
 */
function within(promise, what) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${TIMEOUT_MS / 1000} s`)), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function main() {
  const url = process.argv[2] ?? 'ws://127.0.0.1:8000';
  if (typeof globalThis.WebSocket !== 'function') {
    fail('this Node.js has no global WebSocket: run it with `node --experimental-websocket hello.mjs` (Node >= 20.10)');
  }
  // nostr-tools closes the socket from its error handler; Node's WebSocket (undici) fires the
  // error again on that close, and the two recurse until the stack overflows when the relay is
  // unreachable. Closing once is enough.
  class OnceClosingWebSocket extends globalThis.WebSocket {
    #closing = false;
    /** @param {number} [code] @param {string} [reason] */
    close(code, reason) {
      if (this.#closing) return;
      this.#closing = true;
      super.close(code, reason);
    }
  }
  useWebSocketImplementation(OnceClosingWebSocket);

  const secretKey = generateSecretKey();
  const device = getPublicKey(secretKey);
  console.log(`device key: ${nip19.npubEncode(device)}`);

  /** @type {Relay} */
  let relay;
  try {
    relay = await within(Relay.connect(url), `connecting to ${url}`);
  } catch (e) {
    fail(`cannot connect to ${url} (${e instanceof Error ? e.message : e}); is the relay running?`);
  }

  // Subscribe first (and wait for EOSE), then publish: the answer cannot be missed.
  /** @type {(ev: import('nostr-tools/pure').Event) => void} */
  let onEvent = () => {};
  const eose = new Promise((resolve) => {
    relay.subscribe([{ kinds: [DEPHY_KIND], '#s': [SESSION], '#p': [device] }], {
      onevent: (ev) => onEvent(ev),
      oneose: () => resolve(undefined),
    });
  });
  await within(eose, 'the subscription');
  console.log(`subscribed on ${url} to session ${SESSION}`);

  // A random number makes every run's event distinct.
  const payload = JSON.stringify({ hello: 'world', run: Math.floor(Math.random() * 2 ** 32) });
  const hello = finalizeEvent(
    {
      kind: DEPHY_KIND,
      created_at: Math.floor(Date.now() / 1000),
      tags: [
        ['s', SESSION],
        ['p', device],
      ],
      content: statusContent('Available', 'Reset', '0'.repeat(64), payload),
    },
    secretKey,
  );
  /** @type {Promise<import('nostr-tools/pure').Event>} */
  const echoed = new Promise((resolve) => {
    onEvent = (ev) => {
      if (ev.id === hello.id) resolve(ev);
    };
  });
  try {
    const answer = await within(relay.publish(hello), 'publishing');
    console.log(`published ${hello.id} (kind ${DEPHY_KIND}, Status Available): ${answer === '' ? 'OK' : answer}`);
  } catch (e) {
    fail(`the relay refused the event: ${e instanceof Error ? e.message : e}`);
  }
  const received = await within(echoed, 'waiting for the event to come back');
  console.log(`received ${received.id} from ${url}`);
  console.log(`content: ${received.content}`);
  relay.close();
  console.log('hello world: OK');
}

main().catch((e) => fail(e instanceof Error ? e.message : String(e)));
