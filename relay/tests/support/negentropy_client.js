// A NIP-77 client for the negentropy tests (relay/tests/negentropy.rs), on a negentropy
// implementation independent of the relay's: nostr-tools' JavaScript port of hoytech's
// reference (npm nostr-tools@2.25.2, lib/cjs/nip77.js: NegentropyStorageVector, Negentropy),
// found through NODE_PATH (scripts/test installs it into target/npm-nostr-tools).
//
// Usage: node negentropy_client.js INPUT.json, where INPUT is
//   {"url": "ws://127.0.0.1:PORT", "filter": {...}, "items": [[created_at, "<id hex>"], ...],
//    "frameSizeLimit": 60000, "authSecret": "<hex secret key, optional: NIP-42 first>",
//    "timeoutMs": 20000}
// It opens one session, reconciles to completion and prints one JSON line:
//   {"have": [ids the client holds and the relay does not], "need": [ids the relay holds and
//    the client does not], "rounds": N}
// or {"error": "<NEG-ERR reason>", "rounds": N} when the relay ends the session. Any other
// failure (no connection, timeout, a reconcile error) exits with status 2 and a message.
'use strict';

const fs = require('fs');
const path = require('path');

if (typeof WebSocket === 'undefined') {
  // Node 20 and 21 have the WebSocket client behind a flag; 22 and later have it by default.
  if (process.execArgv.includes('--experimental-websocket')) {
    process.stderr.write('negentropy_client.js: this Node.js has no WebSocket client (need Node >= 20.10)\n');
    process.exit(2);
  }
  const { spawnSync } = require('child_process');
  const args = ['--experimental-websocket', __filename, ...process.argv.slice(2)];
  const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
  process.exit(r.status === null ? 2 : r.status);
}

let nip77, pure;
try {
  const dir = path.dirname(require.resolve('nostr-tools'));
  // nip77 is not in the package's export map: load the built file by path.
  nip77 = require(path.join(dir, 'nip77.js'));
  pure = require(path.join(dir, 'pure.js'));
} catch (e) {
  process.stderr.write(
    'negentropy_client.js: cannot load nostr-tools (' + e.message + '); install it with ' +
      '`npm install --no-save --prefix target/npm-nostr-tools nostr-tools@2.25.2` and put ' +
      'target/npm-nostr-tools/node_modules on NODE_PATH (scripts/test does both)\n',
  );
  process.exit(3);
}

function fail(message) {
  process.stderr.write('negentropy_client.js: ' + message + '\n');
  process.exit(2);
}

const input = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const storage = new nip77.NegentropyStorageVector();
for (const [createdAt, id] of input.items) storage.insert(createdAt, id);
storage.seal();
const neg = new nip77.Negentropy(storage, input.frameSizeLimit || 60000);
const subId = 'neg-' + Math.random().toString(16).slice(2, 10);
const have = [];
const need = [];
let rounds = 0;
let opened = false;

setTimeout(() => fail('no result within ' + (input.timeoutMs || 20000) + ' ms'), input.timeoutMs || 20000).unref();

const ws = new WebSocket(input.url);
function finish(result) {
  ws.onclose = null;
  ws.close();
  // A pipe is written asynchronously: exit once the whole line is out.
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0));
}
function open() {
  opened = true;
  ws.send(JSON.stringify(['NEG-OPEN', subId, input.filter, neg.initiate()]));
}

ws.onerror = (e) => fail('websocket error: ' + (e.message || e.type));
ws.onclose = () => fail('the relay closed the connection');
ws.onopen = () => {
  if (!input.authSecret) open();
};
ws.onmessage = (m) => {
  const msg = JSON.parse(m.data);
  switch (msg[0]) {
    case 'AUTH': {
      if (!input.authSecret || opened) return;
      const url = input.url;
      const event = pure.finalizeEvent(
        {
          kind: 22242,
          created_at: Math.floor(Date.now() / 1000),
          tags: [
            ['relay', url],
            ['challenge', msg[1]],
          ],
          content: '',
        },
        Buffer.from(input.authSecret, 'hex'),
      );
      ws.send(JSON.stringify(['AUTH', event]));
      return;
    }
    case 'OK':
      if (input.authSecret && !opened) {
        if (!msg[2]) fail('AUTH refused: ' + msg[3]);
        open();
      }
      return;
    case 'NOTICE':
      process.stderr.write('negentropy_client.js: NOTICE ' + msg[1] + '\n');
      return;
    case 'NEG-ERR':
      if (msg[1] === subId) finish({ error: msg[2], rounds });
      return;
    case 'NEG-MSG': {
      if (msg[1] !== subId) return;
      rounds += 1;
      let next;
      try {
        next = neg.reconcile(
          msg[2],
          (id) => have.push(id),
          (id) => need.push(id),
        );
      } catch (e) {
        fail('reconcile failed in round ' + rounds + ': ' + e.message);
      }
      if (next === null) {
        ws.send(JSON.stringify(['NEG-CLOSE', subId]));
        finish({ have, need, rounds });
      } else {
        ws.send(JSON.stringify(['NEG-MSG', subId, next]));
      }
      return;
    }
    default:
      return;
  }
};
