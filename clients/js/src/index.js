/**
 * @dephy/relay-client: the package's public API (see ../README.md and ../index.d.ts).
 * Plain ES modules, browser-compatible (Web Crypto for SHA-256, @noble/curves for signatures).
 */

export { toHex, fromHex } from './bytes.js';
export { parseJsonLossless } from './json.js';
export { DephyError } from './errors.js';
export { sha256, emptyRoot, leafHash, nodeHash, leafData, eventLeafHash } from './hash.js';
export {
  inclusionSteps,
  verifyInclusion,
  consistencySteps,
  verifyConsistency,
  inclusionProofLength,
  consistencyProofLength,
} from './proof.js';
export { merkleRoot, inclusionProof, consistencyProof } from './tree.js';
export {
  CHECKPOINT_KIND,
  checkpointContent,
  checkpointEvent,
  checkpointSteps,
  parseCheckpointEvent,
  verifyCheckpointConsistency,
  checkpointConsistencySteps,
} from './checkpoint.js';
export {
  serializeEvent,
  eventId,
  generateSecretKey,
  getPublicKey,
  finalizeEvent,
  verifyEvent,
  isValidEvent,
  checkEventShape,
} from './event.js';
export {
  STATUSES,
  REASONS,
  ZERO_ID,
  checkMessage,
  messageToJson,
  parseMessage,
  recoverInfoToJson,
  parseRecoverInfo,
  payloadToJson,
  parsePayload,
} from './message.js';
export { DEPHY_KIND, buildDephyEvent, requestEvent, statusEvent, transactionEvent, parseDephyEvent } from './dephy.js';
export {
  DIGEST_PREFIX,
  authorizationMessage,
  authorizationDigest,
  walletAddress,
  keypairWallet,
  signAuthorization,
  signedPayload,
  signedPayloadJson,
  verifyAuthorization,
} from './authorization.js';
export { secretKeySigner, authEvent, nip98Header } from './signer.js';
export {
  httpBase,
  getJson,
  fetchRelayInfo,
  fetchCheckpoint,
  fetchCheckpoints,
  fetchInclusionProof,
  fetchConsistencyProof,
  fetchEntries,
  fetchEventsAfter,
  inclusionResponseSteps,
  verifyEventInLog,
  verifyCheckpointsConsistent,
} from './logapi.js';
export { RelayClient } from './relay.js';
