// Starts an offline Solana node: surfpool's embedded runtime (npm
// @solana/surfpool-linux-x64-gnu@1.5.0) on a random 127.0.0.1 port, with no mainnet fallback; the
// Memo, Token and Associated Token programs are built in. Prints
// `{"rpcUrl":"http://127.0.0.1:PORT"}` as one JSON line on stdout and, when a file name is given,
// writes the URL into that file (so `--rpc "$(cat FILE)"` works). Stops on SIGTERM / SIGINT
// (Ctrl-C) / SIGHUP or, when stdin is not a terminal, when its stdin closes (the test process went
// away); the URL file is removed on every exit. Used by the relay's and the device SDK's tests and,
// through tutorials/support/surfpool.js, by the tutorials; bridge/tests/support/surfpool.rs runs it
// for the bridge's and the relay's federation and explorer tests.
//
// The runtime picks a free port and binds it a moment later. When another process takes the port
// in between (parallel test binaries open connections from ephemeral ports all the time), 1.5.0
// prints "RPC port N is already in use" and `Surfnet.startWithConfig` never returns; when the final
// bind loses the race it throws instead. A call blocked in the addon cannot be abandoned inside one
// process (even `process.exit` waits for it), so the node runs in a child process (this file again,
// with SURFPOOL_JS_NODE=1): one that has not printed its URL within ATTEMPT_MS is killed and the next
// attempt picks a new random port, up to ATTEMPTS times.
//
// Install once: npm install --no-save --prefix target/npm @solana/surfpool-linux-x64-gnu@1.5.0
// (scripts/test does it). Run: NODE_PATH=target/npm/node_modules node <this file> [URL_FILE]
'use strict';

const { spawn } = require('child_process');
const fs = require('fs');

const ADDON = '@solana/surfpool-linux-x64-gnu';
const ATTEMPTS = 4;
const ATTEMPT_MS = 7000;

// Calls `stop` on SIGTERM / SIGINT / SIGHUP and, unless stdin is a terminal, when stdin closes.
function onStopRequest(stop) {
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', stop);
  if (!process.stdin.isTTY) {
    process.stdin.on('end', stop);
    process.stdin.on('close', stop);
    process.stdin.resume();
  }
}

// The child: one start of the node; prints its URL, drains its event channel, stops when asked.
function node() {
  let surfnet;
  try {
    const { Surfnet } = require(ADDON);
    surfnet = Surfnet.startWithConfig({ offline: true });
  } catch (e) {
    process.stderr.write('surfpool.js: ' + String((e && e.message) || e) + '\n');
    process.exit(1);
  }
  // The runtime pushes one event per slot into a bounded channel its owner must empty: left
  // alone it fills after ~1024 slots (~80 s) and the node stops answering RPC calls.
  const drainTimer = setInterval(() => surfnet.drainEvents(), 100);
  let stopped = false;
  onStopRequest(() => {
    if (stopped) return;
    stopped = true;
    clearInterval(drainTimer);
    try {
      surfnet.stop();
    } finally {
      process.exit(0);
    }
  });
  process.stdout.write(JSON.stringify({ rpcUrl: surfnet.rpcUrl }) + '\n');
}

// One attempt: resolves with the child and its URL, or rejects with why it did not start (the
// child exited, printed something else, or printed nothing within ATTEMPT_MS).
function attempt() {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [__filename], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, SURFPOOL_JS_NODE: '1' },
    });
    let out = '';
    const fail = (why) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(why));
    };
    const timer = setTimeout(() => fail(`no URL within ${ATTEMPT_MS} ms`), ATTEMPT_MS);
    child.on('error', (e) => fail(e.message));
    child.on('exit', (code, signal) => fail(`exited (${signal || 'code ' + code})`));
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const newline = out.indexOf('\n');
      if (newline < 0) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      child.stdout.removeAllListeners('data');
      child.stdout.resume();
      let rpcUrl;
      try {
        rpcUrl = JSON.parse(out.slice(0, newline)).rpcUrl;
      } catch (e) {
        // not JSON: reported below
      }
      if (typeof rpcUrl === 'string') resolve({ child, rpcUrl });
      else fail('printed ' + JSON.stringify(out.slice(0, newline)));
    });
  });
}

// The parent: starts the node (retrying), publishes its URL, stops it when asked, and exits with
// an error when it stops by itself.
async function main() {
  try {
    require.resolve(ADDON);
  } catch (e) {
    process.stderr.write(
      'surfpool.js: cannot load ' + ADDON + ' (' + e.message + '); install it with ' +
        '`npm install --no-save --prefix target/npm @solana/surfpool-linux-x64-gnu@1.5.0` ' +
        'and run with NODE_PATH=target/npm/node_modules (scripts/test does both)\n',
    );
    process.exit(3);
  }
  const urlFile = process.argv[2];
  const removeUrlFile = () => urlFile && fs.rmSync(urlFile, { force: true });
  process.on('exit', removeUrlFile);
  // Until a node has started, a stop request ends the process at once (an attempt's child then
  // sees its stdin close and stops itself), so the loop below never runs on after one.
  let child;
  let stopped = false;
  onStopRequest(() => {
    if (stopped) return;
    stopped = true;
    removeUrlFile();
    if (!child || child.exitCode !== null || child.signalCode !== null) process.exit(0);
    child.once('exit', () => process.exit(0));
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5000);
  });
  const reasons = [];
  for (let i = 1; i <= ATTEMPTS; i++) {
    let started;
    try {
      started = await attempt();
    } catch (e) {
      reasons.push(`attempt ${i}: ${e.message}`);
      continue;
    }
    child = started.child;
    if (reasons.length) process.stderr.write(`surfpool.js: started on attempt ${i} (${reasons.join('; ')})\n`);
    child.once('exit', (code, signal) => {
      if (stopped) return;
      process.stderr.write(`surfpool.js: the node exited by itself (${signal || 'code ' + code})\n`);
      process.exit(1);
    });
    if (urlFile) fs.writeFileSync(urlFile, started.rpcUrl + '\n');
    process.stdout.write(JSON.stringify({ rpcUrl: started.rpcUrl }) + '\n');
    return;
  }
  process.stderr.write(`surfpool.js: the node did not start in ${ATTEMPTS} attempts: ${reasons.join('; ')}\n`);
  process.exit(1);
}

if (process.env.SURFPOOL_JS_NODE === '1') node();
else main();
