// Independent check (Node.js, nostr-tools + @noble + @scure, no project code) that the tutorials'
// payment authorizations are DePHY's: it fetches every kind 1573 Request of a session from the
// relay, takes the namespace name from DePHY's table by the payload's namespace_id (0 "DeCharge",
// 1 "Gacha"), rebuilds the signed text "DePHY vending machine/<name>:\n" +
// base58(keccak256(extra_data || namespace_id LE || nonce LE || deadline LE)) and verifies the
// user's ed25519 signature. Prints one line per Request; exits 1 if none verifies or one fails.
// Usage: node --experimental-websocket verify_namespaces.mjs RELAY_URL SESSION
import { Relay } from 'nostr-tools/relay';
import './once_closing_websocket.mjs';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { base58 } from '@scure/base';

const DEPHY_NAMESPACES = new Map([
  [0n, 'DeCharge'],
  [1n, 'Gacha'],
]);

/** @param {unknown} v @param {number} len */
function bytes(v, len) {
  if (!Array.isArray(v) || v.length !== len || !v.every((b) => Number.isInteger(b) && b >= 0 && b < 256)) {
    throw new Error(`expected ${len} bytes`);
  }
  return Uint8Array.from(v);
}

/** @param {string} payloadText @returns {string} */
function check(payloadText) {
  // Integers may exceed 2^53: read them as BigInt from the raw text.
  const payload = JSON.parse(payloadText);
  const nsMatch = /"namespace_id":(\d+)/.exec(payloadText);
  const nonceMatch = /"nonce":(\d+)/.exec(payloadText);
  if (!nsMatch || !nonceMatch) throw new Error('no namespace_id / nonce');
  const namespaceId = BigInt(nsMatch[1]);
  const nonce = BigInt(nonceMatch[1]);
  const name = DEPHY_NAMESPACES.get(namespaceId);
  if (name === undefined) throw new Error(`namespace ${namespaceId} is not one of DePHY's (0 DeCharge, 1 Gacha)`);
  const info = JSON.parse(payload.recover_info);
  const msg = new Uint8Array(88);
  msg.set(bytes(info.extra_data, 64), 0);
  const view = new DataView(msg.buffer);
  view.setBigUint64(64, namespaceId, true);
  view.setBigUint64(72, nonce, true);
  view.setBigInt64(80, BigInt(info.deadline), true);
  const text = `DePHY vending machine/${name}:\n${base58.encode(keccak_256(msg))}`;
  const ok = ed25519.verify(bytes(info.signature, 64), new TextEncoder().encode(text), base58.decode(payload.user));
  if (!ok) throw new Error(`the signature does not verify for namespace ${namespaceId} "${name}"`);
  return `namespace ${namespaceId} "${name}": signature ok`;
}

const [url, session] = process.argv.slice(2);
const relay = await Relay.connect(url);
const events = [];
await new Promise((resolve) => {
  const sub = relay.subscribe([{ kinds: [1573], '#s': [session] }], {
    onevent: (ev) => events.push(ev),
    oneose: () => {
      sub.close();
      resolve(undefined);
    },
  });
});
relay.close();
let verified = 0;
let failed = 0;
for (const ev of events) {
  const request = JSON.parse(ev.content).Request;
  if (!request || request.to_status !== 'Working') continue;
  try {
    console.log(`request ${ev.id.slice(0, 12)}: ${check(request.payload)}`);
    verified++;
  } catch (e) {
    console.log(`request ${ev.id.slice(0, 12)}: BAD: ${e instanceof Error ? e.message : e}`);
    failed++;
  }
}
console.log(`verified ${verified}, failed ${failed}`);
process.exit(verified > 0 && failed === 0 ? 0 : 1);
