// Independent encoder for DePHY's balance-payment program: Anchor's own TypeScript client
// (npm @coral-xyz/anchor@0.32.1, found through NODE_PATH) driven by an IDL written here from the
// program's interface (shared reference), with discriminators computed here with node:crypto.
// Reads on stdin {"program": base58, "instructions": [...], "accounts": [...]}; for each
// instruction case ({"name", "user", "payer", "bot", "treasury", "namespace_id", "nonce",
// "amount", "recover_info": {"signature": hex, "extra_data": hex, "deadline"}}) it derives the
// PDAs itself, builds the instruction with Program.methods...accountsStrict().instruction() and
// prints its data (hex) and account metas; for each account case ({"name", "value"}) it prints
// the bytes of BorshAccountsCoder.encode (given snake_case fields as the IDL declares them). Prints {"discriminators", "instructions", "accounts"}.
'use strict';

let anchor;
try {
  anchor = require('@coral-xyz/anchor');
} catch (e) {
  process.stderr.write(
    'anchor_coder.js: cannot load @coral-xyz/anchor (' + e.message + '); install it with ' +
      '`npm install --no-save --prefix target/npm-anchor @coral-xyz/anchor@0.32.1` and put ' +
      'target/npm-anchor/node_modules on NODE_PATH (scripts/test does both)\n',
  );
  process.exit(3);
}
const crypto = require('node:crypto');
const { PublicKey, SystemProgram } = require('@solana/web3.js');
const { BN } = anchor;

const disc = (prefix, name) => [...crypto.createHash('sha256').update(prefix + ':' + name).digest().subarray(0, 8)];
const w = (name) => ({ name, writable: true });
const s = (name) => ({ name, signer: true });
const ws = (name) => ({ name, writable: true, signer: true });
const r = (name) => ({ name });
const sys = { name: 'system_program', address: SystemProgram.programId.toBase58() };
const recoverArg = { name: 'recover_info', type: { defined: { name: 'ED25519RecoverInfo' } } };

function idl(program) {
  const ix = (name, accounts, args) => ({ name, discriminator: disc('global', name), accounts, args });
  const vaultAccounts = [w('user_account'), ws('user'), w('vault'), ws('payer'), sys];
  const struct = (name, fields) => ({ name, type: { kind: 'struct', fields } });
  return {
    address: program,
    metadata: { name: 'balance_payment', version: '0.1.0', spec: '0.1.0' },
    instructions: [
      ix('register', [w('user_account'), s('user'), r('vault'), ws('payer'), sys], []),
      ix('deposit', vaultAccounts, [{ name: 'amount', type: 'u64' }]),
      ix('withdraw', vaultAccounts, [{ name: 'amount', type: 'u64' }]),
      ix(
        'lock',
        [r('namespace'), w('user_account'), w('user'), w('lock_account'), r('vault'), s('bot'), ws('payer'), sys],
        [{ name: 'namespace_id', type: 'u64' }, recoverArg, { name: 'amount', type: 'u64' }],
      ),
      ix(
        'settle',
        [r('namespace'), w('user_account'), w('user'), w('treasury'), w('lock_account'), w('vault'), s('bot'), ws('payer'), sys],
        [{ name: 'nonce', type: 'u64' }, { name: 'amount_to_transfer', type: 'u64' }],
      ),
      ix(
        'pay',
        [r('namespace'), w('user_account'), w('user'), w('treasury'), w('vault'), s('bot'), ws('payer'), sys],
        [{ name: 'namespace_id', type: 'u64' }, recoverArg, { name: 'amount_to_transfer', type: 'u64' }],
      ),
    ],
    accounts: ['GlobalAccount', 'NamespaceAccount', 'UserAccount', 'LockAccount'].map((name) => ({
      name,
      discriminator: disc('account', name),
    })),
    types: [
      struct('ED25519RecoverInfo', [
        { name: 'signature', type: { array: ['u8', 64] } },
        { name: 'extra_data', type: { array: ['u8', 64] } },
        { name: 'deadline', type: 'i64' },
      ]),
      struct('GlobalAccount', [{ name: 'namespace_nonce', type: 'u64' }]),
      struct('NamespaceAccount', [
        { name: 'id', type: 'u64' },
        { name: 'name', type: 'string' },
        { name: 'authority', type: 'pubkey' },
        { name: 'bot', type: 'pubkey' },
        { name: 'treasury', type: 'pubkey' },
        { name: 'created_at', type: 'i64' },
        { name: 'updated_at', type: 'i64' },
      ]),
      struct('UserAccount', [
        { name: 'nonce', type: 'u64' },
        { name: 'locked_amount', type: 'u64' },
        { name: 'vault', type: 'pubkey' },
      ]),
      struct('LockAccount', [
        { name: 'namespace_id', type: 'u64' },
        { name: 'amount', type: 'u64' },
      ]),
    ],
  };
}

const u64le = (n) => new BN(n).toArrayLike(Buffer, 'le', 8);

async function instruction(program, c) {
  const pid = program.programId;
  const pk = (b58) => new PublicKey(b58);
  const pda = (...seeds) => PublicKey.findProgramAddressSync(seeds, pid)[0];
  const user = pk(c.user);
  const userAccount = pda(Buffer.from('USER'), user.toBuffer());
  const vault = pda(Buffer.from('VAULT'), user.toBuffer());
  const namespace = () => pda(Buffer.from('NAMESPACE'), u64le(c.namespace_id));
  const lockAccount = () => pda(Buffer.from('LOCK'), user.toBuffer(), u64le(c.nonce));
  const recoverInfo = () => ({
    signature: [...Buffer.from(c.recover_info.signature, 'hex')],
    extraData: [...Buffer.from(c.recover_info.extra_data, 'hex')],
    deadline: new BN(c.recover_info.deadline),
  });
  const common = { userAccount, user, vault, payer: pk(c.payer), systemProgram: SystemProgram.programId };
  let builder;
  switch (c.name) {
    case 'register':
      builder = program.methods.register().accountsStrict(common);
      break;
    case 'deposit':
      builder = program.methods.deposit(new BN(c.amount)).accountsStrict(common);
      break;
    case 'withdraw':
      builder = program.methods.withdraw(new BN(c.amount)).accountsStrict(common);
      break;
    case 'lock':
      builder = program.methods
        .lock(new BN(c.namespace_id), recoverInfo(), new BN(c.amount))
        .accountsStrict({ ...common, namespace: namespace(), lockAccount: lockAccount(), bot: pk(c.bot) });
      break;
    case 'settle':
      builder = program.methods
        .settle(new BN(c.nonce), new BN(c.amount))
        .accountsStrict({ ...common, namespace: namespace(), treasury: pk(c.treasury), lockAccount: lockAccount(), bot: pk(c.bot) });
      break;
    case 'pay':
      builder = program.methods
        .pay(new BN(c.namespace_id), recoverInfo(), new BN(c.amount))
        .accountsStrict({ ...common, namespace: namespace(), treasury: pk(c.treasury), bot: pk(c.bot) });
      break;
    default:
      throw new Error('unknown instruction ' + c.name);
  }
  const ix = await builder.instruction();
  return {
    program_id: ix.programId.toBase58(),
    data: Buffer.from(ix.data).toString('hex'),
    accounts: ix.keys.map((k) => ({ pubkey: k.pubkey.toBase58(), is_signer: k.isSigner, is_writable: k.isWritable })),
  };
}

async function encodeAccount(coder, c) {
  const v = c.value;
  const big = (n) => new BN(n);
  const values = {
    GlobalAccount: () => ({ namespace_nonce: big(v.namespace_nonce) }),
    NamespaceAccount: () => ({
      id: big(v.id),
      name: v.name,
      authority: new PublicKey(v.authority),
      bot: new PublicKey(v.bot),
      treasury: new PublicKey(v.treasury),
      created_at: big(v.created_at),
      updated_at: big(v.updated_at),
    }),
    UserAccount: () => ({ nonce: big(v.nonce), locked_amount: big(v.locked_amount), vault: new PublicKey(v.vault) }),
    LockAccount: () => ({ namespace_id: big(v.namespace_id), amount: big(v.amount) }),
  };
  const bytes = await coder.encode(c.name, values[c.name]());
  return Buffer.from(bytes).toString('hex');
}

let input = '';
process.stdin.on('data', (chunk) => (input += chunk));
process.stdin.on('end', async () => {
  try {
    const req = JSON.parse(input);
    const raw = idl(req.program);
    const program = new anchor.Program(raw, { connection: null });
    // The raw (snake_case) IDL for the accounts coder: field names as the program declares them.
    const accountsCoder = new anchor.BorshAccountsCoder(raw);
    const discriminators = {};
    for (const i of raw.instructions) discriminators['global:' + i.name] = i.discriminator;
    for (const a of raw.accounts) discriminators['account:' + a.name] = a.discriminator;
    const instructions = [];
    for (const c of req.instructions) instructions.push(await instruction(program, c));
    const accounts = [];
    for (const c of req.accounts) accounts.push(await encodeAccount(accountsCoder, c));
    process.stdout.write(JSON.stringify({ discriminators, instructions, accounts }) + '\n');
  } catch (e) {
    process.stderr.write('anchor_coder.js: ' + (e.stack || e) + '\n');
    process.exit(1);
  }
});
