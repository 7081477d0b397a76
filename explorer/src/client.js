/**
 * What the explorer uses from the JavaScript client package (clients/js, bundled in by
 * esbuild): DePHY event parsing and the verifiable log's checks, so the page verifies exactly
 * as dApps do.
 */

import { parseDephyEvent } from '../../clients/js/src/index.js';

export {
  checkpointSteps,
  checkpointConsistencySteps,
  eventLeafHash,
  inclusionSteps,
  toHex,
} from '../../clients/js/src/index.js';

/**
 * A kind-1573 Status event as `{ session, machine, status, reason }` (id and signature checked
 * by the client's parser), or null for anything else.
 */
export async function parseStatus(event) {
  try {
    const parsed = await parseDephyEvent(event);
    if (parsed.message.type !== 'Status') return null;
    return { session: parsed.session, machine: parsed.machine, status: parsed.message.status, reason: parsed.message.reason };
  } catch {
    return null;
  }
}
