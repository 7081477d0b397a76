// DePHY kind-1573 messages and events: the exact bytes of the Rust SDK and typed rejections.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  ZERO_ID,
  finalizeEvent,
  generateSecretKey,
  getPublicKey,
  messageToJson,
  parseDephyEvent,
  parseMessage,
  parsePayload,
  parseRecoverInfo,
  payloadToJson,
  recoverInfoToJson,
  requestEvent,
  statusEvent,
} from '../src/index.js';

test('wire format matches DePHY', () => {
  const request = { type: 'Request', to_status: 'Working', reason: 'UserRequest', initial_request: ZERO_ID, payload: '{"a":1}' };
  assert.equal(messageToJson(request), `{"Request":{"to_status":"Working","reason":"UserRequest","initial_request":"${ZERO_ID}","payload":"{\\"a\\":1}"}}`);
  assert.equal(messageToJson({ type: 'Transaction', user: 'Us3r', tokens: -120 }), '{"Transaction":{"user":"Us3r","tokens":-120}}');
  const status = `{"Status":{"status":"Available","reason":"UserBehaviour","initial_request":"${ZERO_ID}","payload":""}}`;
  const parsed = parseMessage(status);
  assert.deepEqual(parsed, { type: 'Status', status: 'Available', reason: 'UserBehaviour', initial_request: ZERO_ID, payload: '' });
  assert.equal(messageToJson(parsed), status);
});

test('malformed content is rejected', () => {
  const bad = [
    'not json',
    '{"Unknown":{}}',
    '{"Status":{"status":"Broken","reason":"UserRequest","initial_request":"00","payload":""}}',
    '{"Status":{"status":"Working","reason":"UserRequest","initial_request":"xyz","payload":""}}',
    '{"Status":{"status":"Working","reason":"UserRequest","payload":""}}',
    '{"Transaction":{"user":"u","tokens":"12"}}',
    '"Request"',
  ];
  for (const content of bad) assert.throws(() => parseMessage(content), { code: 'Content' }, content);
});

test('payload and recover info', () => {
  const info = { signature: new Uint8Array(64).fill(1), extra_data: new Uint8Array(64).fill(2), deadline: 1800000000 };
  const text = payloadToJson({ namespace_id: 1, user: 'User', nonce: 7, recover_info: recoverInfoToJson(info) });
  assert.ok(text.startsWith('{"namespace_id":1,"user":"User","nonce":7,"recover_info":"{\\"signature\\":[1,'));
  const back = parsePayload(text);
  assert.deepEqual(parseRecoverInfo(back.recover_info), info);
  assert.throws(() => parseRecoverInfo(recoverInfoToJson({ ...info, signature: new Uint8Array(63) })), { code: 'WrongLength', field: 'signature', actual: 63 });
  assert.throws(() => parsePayload('{}'), { code: 'Payload' });
  assert.throws(() => parseRecoverInfo('{"signature":[]}'), { code: 'RecoverInfo' });
});

test('events: layout, parsing and typed errors', async () => {
  const user = generateSecretKey();
  const machine = getPublicKey(generateSecretKey());
  const event = await requestEvent(user, { session: 'dephy-decharge-controller', machine, to_status: 'Working', reason: 'UserRequest', payload: '{}' });
  assert.equal(event.kind, 1573);
  assert.deepEqual(event.tags, [['s', 'dephy-decharge-controller'], ['p', machine]]);
  const parsed = await parseDephyEvent(event);
  assert.equal(parsed.machine, machine);
  assert.equal(parsed.author, getPublicKey(user));
  assert.equal(parsed.message.to_status, 'Working');
  await assert.rejects(parseDephyEvent(event, 'other'), { code: 'WrongSession' });

  const mk = generateSecretKey();
  const st = await parseDephyEvent(await statusEvent(mk, { session: 's1', status: 'Available', reason: 'Reset', initial_request: ZERO_ID }));
  assert.equal(st.machine, getPublicKey(mk));
  assert.equal(st.author, getPublicKey(mk));

  const m = getPublicKey(user);
  const good = messageToJson({ type: 'Transaction', user: 'u', tokens: 1 });
  const sign = (kind, content, tags) => finalizeEvent({ kind, content, tags }, user);
  await assert.rejects(parseDephyEvent(await sign(1, good, [['s', 'x'], ['p', m]])), { code: 'WrongKind' });
  await assert.rejects(parseDephyEvent(await sign(1573, good, [['p', m]])), { code: 'MissingSession' });
  await assert.rejects(parseDephyEvent(await sign(1573, good, [['s', 'x']])), { code: 'MissingMachine' });
  await assert.rejects(parseDephyEvent(await sign(1573, good, [['s', 'x'], ['s', 'y'], ['p', m]])), { code: 'DuplicateTag', count: 2 });
  await assert.rejects(parseDephyEvent(await sign(1573, good, [['s', 'x'], ['p', 'zz']])), { code: 'BadMachine' });
  await assert.rejects(parseDephyEvent(await sign(1573, '{}', [['s', 'x'], ['p', m]])), { code: 'Content' });
  const tampered = await sign(1573, good, [['s', 'x'], ['p', m]]);
  tampered.content = messageToJson({ type: 'Transaction', user: 'u', tokens: 1000 });
  await assert.rejects(parseDephyEvent(tampered), { code: 'InvalidId' });
  const forged = { ...(await sign(1573, good, [['s', 'x'], ['p', m]])) };
  forged.sig = forged.sig.replace(/^./, (c) => (c === '0' ? '1' : '0'));
  await assert.rejects(parseDephyEvent(forged), { code: 'InvalidSignature' });
});

test('u64 and i64 values beyond 2^53 survive parsing and serialization exactly', () => {
  const info = { signature: new Uint8Array(64), extra_data: new Uint8Array(64), deadline: -(2n ** 63n) };
  const text = payloadToJson({ namespace_id: 2n ** 64n - 1n, user: 'U', nonce: 2n ** 53n, recover_info: recoverInfoToJson(info) });
  assert.ok(text.startsWith('{"namespace_id":18446744073709551615,"user":"U","nonce":9007199254740992,"recover_info":"'));
  const back = parsePayload(text);
  assert.equal(back.namespace_id, 2n ** 64n - 1n);
  assert.equal(back.nonce, 2n ** 53n);
  assert.equal(parseRecoverInfo(back.recover_info).deadline, -(2n ** 63n));
  assert.equal(payloadToJson(back), text);
  assert.throws(() => parsePayload(text.replace('18446744073709551615', '18446744073709551616')), { code: 'Payload' });
  assert.throws(() => parseMessage('{"Transaction":{"user":"u","tokens":12.0}}'), { code: 'Content' });
  const big = '{"Transaction":{"user":"u","tokens":-9223372036854775808}}';
  assert.equal(messageToJson(parseMessage(big)), big);
});
