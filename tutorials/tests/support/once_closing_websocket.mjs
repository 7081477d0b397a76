// Makes nostr-tools' Relay use Node's WebSocket with a close() that acts once: nostr-tools closes
// the socket from its error handler, Node's WebSocket (undici) fires the error again on that
// close, and the two recurse until the stack overflows when the relay is unreachable.
// Imported for its effect by the test scripts beside it (tutorials/hello-world-ts/hello.mjs
// carries its own copy: a tutorial stays one self-contained file).
import { useWebSocketImplementation } from 'nostr-tools/relay';

class OnceClosingWebSocket extends globalThis.WebSocket {
  #closing = false;
  close(code, reason) {
    if (this.#closing) return;
    this.#closing = true;
    super.close(code, reason);
  }
}
useWebSocketImplementation(OnceClosingWebSocket);
