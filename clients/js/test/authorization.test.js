// Payment authorizations: digest layout, signing through a wallet's signMessage, verification
// and every tampering the Rust SDK refuses.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { authorizationDigest, authorizationMessage, keypairWallet, parseRecoverInfo, signedPayload, verifyAuthorization, walletAddress } from '../src/index.js';

test('message layout', () => {
  const msg = authorizationMessage(new Uint8Array(64).fill(9), 0x0102, 7, -1);
  assert.equal(msg.length, 88);
  assert.deepEqual([...msg.slice(64, 72)], [2, 1, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...msg.slice(72, 80)], [7, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...msg.slice(80, 88)], Array(8).fill(0xff));
  const max = authorizationMessage(new Uint8Array(64), 2n ** 64n - 1n, 2n ** 64n - 1n, -(2n ** 63n));
  assert.deepEqual([...max.slice(64, 88)], [...Array(16).fill(0xff), 0, 0, 0, 0, 0, 0, 0, 0x80]);
  assert.match(authorizationDigest('gacha', new Uint8Array(64), 1, 2, 3), /^DePHY vending machine\/gacha:\n[1-9A-HJ-NP-Za-km-z]{43,44}$/);
  assert.throws(() => authorizationMessage(new Uint8Array(63), 1, 2, 3), { code: 'BadArgument' });
  assert.throws(() => authorizationMessage(new Uint8Array(64), -1, 2, 3), { code: 'BadArgument' });
});

test('sign through signMessage, verify, and refuse tampering', async () => {
  const wallet = keypairWallet(new Uint8Array(32).fill(7));
  const payload = await signedPayload(wallet, { namespace: 'decharge', namespaceId: 1, nonce: 5, deadline: 2000000000, extraData: new Uint8Array(64).fill(3) });
  assert.equal(payload.user, walletAddress(wallet.publicKey));
  assert.equal(verifyAuthorization(payload, 1, 'decharge', 1900000000).nonce, 5);
  assert.throws(() => verifyAuthorization(payload, 1, 'other', 0), { code: 'BadSignature' });
  assert.throws(() => verifyAuthorization(payload, 2, 'decharge', 0), { code: 'WrongNamespace' });
  assert.throws(() => verifyAuthorization(payload, 1, 'decharge', 2000000001), { code: 'Expired' });
  assert.throws(() => verifyAuthorization({ ...payload, nonce: 6 }, 1, 'decharge', 0), { code: 'BadSignature' });
  const other = keypairWallet(new Uint8Array(32).fill(8));
  assert.throws(() => verifyAuthorization({ ...payload, user: walletAddress(other.publicKey) }, 1, 'decharge', 0), { code: 'BadSignature' });
  const info = parseRecoverInfo(payload.recover_info);
  const later = JSON.stringify({ signature: [...info.signature], extra_data: [...info.extra_data], deadline: info.deadline + 1 });
  assert.throws(() => verifyAuthorization({ ...payload, recover_info: later }, 1, 'decharge', 0), { code: 'BadSignature' });
  assert.throws(() => verifyAuthorization({ ...payload, user: 'not-base58-0OIl' }, 1, 'decharge', 0), { code: 'BadUser' });
  // A wallet whose signMessage returns something else is refused with a clear error.
  await assert.rejects(signedPayload({ publicKey: wallet.publicKey, signMessage: async () => new Uint8Array(3) }, { namespace: 'x', namespaceId: 1, nonce: 1, deadline: 1 }), { code: 'BadSignature' });
});
