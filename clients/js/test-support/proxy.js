// A TCP proxy on 127.0.0.1 in front of the relay that a test can take down (cutting every
// connection, as a network failure would) and bring back on the same port. Node-only, tests only.
import net from 'node:net';

export class Proxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.sockets = new Set();
    this.server = null;
    this.port = 0;
  }

  /** Starts listening (on the same port as before, after `down`). */
  up() {
    this.server = net.createServer((inbound) => {
      const outbound = net.connect(this.targetPort, '127.0.0.1');
      for (const s of [inbound, outbound]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      inbound.pipe(outbound);
      outbound.pipe(inbound);
      inbound.on('close', () => outbound.destroy());
      outbound.on('close', () => inbound.destroy());
    });
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', () => {
        this.port = this.server.address().port;
        resolve();
      });
    });
  }

  /** Stops accepting and destroys every forwarded connection. */
  down() {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  get url() {
    return `ws://127.0.0.1:${this.port}`;
  }
}
