// Type declarations of @dephy/relay-client (hand-written; the implementation is src/*.js).

export type Hex = string;
export type HashLike = Hex | Uint8Array;
export type IntLike = number | bigint;

export declare class DephyError extends Error {
  constructor(code: string, message: string, details?: Record<string, unknown>);
  code: string;
  [detail: string]: unknown;
}

// bytes.js, json.js
export declare function toHex(bytes: Uint8Array): Hex;
export declare function fromHex(hex: string, length?: number, what?: string): Uint8Array;
export declare function parseJsonLossless(text: string, options?: { integersOnly?: boolean }): unknown;

// hash.js
export declare function sha256(bytes: Uint8Array): Promise<Uint8Array>;
export declare function emptyRoot(): Promise<Uint8Array>;
export declare function leafHash(data: Uint8Array): Promise<Uint8Array>;
export declare function nodeHash(left: Uint8Array, right: Uint8Array): Promise<Uint8Array>;
export declare function leafData(eventId: HashLike, receivedMs: IntLike): Uint8Array;
export declare function eventLeafHash(eventId: HashLike, receivedMs: IntLike): Promise<Uint8Array>;

// proof.js, tree.js
export interface InclusionStep { i: number; sibling: Hex; side: 'left' | 'right'; before: Hex; after: Hex }
export interface InclusionResult { ok: boolean; error: DephyError | null; steps: InclusionStep[]; computedRoot?: Hex }
export interface ConsistencyStep { i: number; seed?: true; fromProof?: boolean; hash: Hex; updates?: 'both' | 'new'; old: Hex; new: Hex }
export interface ConsistencyResult { ok: boolean; error: DephyError | null; steps: ConsistencyStep[]; computedOld?: Hex; computedNew?: Hex }
export declare function inclusionSteps(leafHash: HashLike, index: IntLike, size: IntLike, proof: HashLike[], root: HashLike): Promise<InclusionResult>;
export declare function verifyInclusion(leafHash: HashLike, index: IntLike, size: IntLike, proof: HashLike[], root: HashLike): Promise<InclusionStep[]>;
export declare function consistencySteps(m: IntLike, n: IntLike, proof: HashLike[], rootM: HashLike, rootN: HashLike): Promise<ConsistencyResult>;
export declare function verifyConsistency(m: IntLike, n: IntLike, proof: HashLike[], rootM: HashLike, rootN: HashLike): Promise<ConsistencyStep[]>;
export declare function inclusionProofLength(index: IntLike, size: IntLike): number;
export declare function consistencyProofLength(m: IntLike, n: IntLike): number;
export declare function merkleRoot(leafHashes: Uint8Array[]): Promise<Hex>;
export declare function inclusionProof(leafHashes: Uint8Array[], index: number): Promise<Hex[]>;
export declare function consistencyProof(leafHashes: Uint8Array[], m: number): Promise<Hex[]>;

// event.js
export interface NostrEvent { id: Hex; pubkey: Hex; created_at: number; kind: number; tags: string[][]; content: string; sig: Hex }
export interface EventTemplate { kind: number; tags?: string[][]; content?: string; created_at?: number }
export type SecretKey = Uint8Array | Hex;
export declare function serializeEvent(event: Omit<NostrEvent, 'id' | 'sig'>): string;
export declare function eventId(event: Omit<NostrEvent, 'id' | 'sig'>): Promise<Hex>;
export declare function generateSecretKey(): Uint8Array;
export declare function getPublicKey(secretKey: SecretKey): Hex;
export declare function finalizeEvent(template: EventTemplate, secretKey: SecretKey): Promise<NostrEvent>;
export declare function verifyEvent(event: unknown): Promise<NostrEvent>;
export declare function isValidEvent(event: unknown): Promise<boolean>;
export declare function checkEventShape(event: unknown): void;

// checkpoint.js
export interface Checkpoint { tree_size: number; root_hash: Hex; timestamp: number; anchor?: string }
export interface CheckStep { check: string; ok: boolean; detail: string }
export interface CheckpointResult { ok: boolean; error: DephyError | null; checkpoint: Checkpoint | null; steps: CheckStep[] }
export declare const CHECKPOINT_KIND: 1574;
export declare function checkpointContent(cp: Checkpoint): string;
export declare function checkpointEvent(cp: Checkpoint, secretKey: SecretKey): Promise<NostrEvent>;
export declare function checkpointSteps(event: unknown, relayPubkey?: Hex | null): Promise<CheckpointResult>;
export declare function parseCheckpointEvent(event: unknown, relayPubkey?: Hex | null): Promise<Checkpoint>;
export declare function verifyCheckpointConsistency(older: Checkpoint, newer: Checkpoint, proof: HashLike[]): Promise<ConsistencyStep[]>;
export declare function checkpointConsistencySteps(older: Checkpoint, newer: Checkpoint, proof: HashLike[]): Promise<ConsistencyResult>;

// message.js, dephy.js
export type MachineStatus = 'Available' | 'Working';
export type Reason = 'UserRequest' | 'AdminRequest' | 'UserBehaviour' | 'Reset' | 'LockFailed';
export type Message =
  | { type: 'Request'; to_status: MachineStatus; reason: Reason; initial_request: Hex; payload: string }
  | { type: 'Status'; status: MachineStatus; reason: Reason; initial_request: Hex; payload: string }
  | { type: 'Transaction'; user: string; tokens: IntLike };
export interface RecoverInfo { signature: Uint8Array; extra_data: Uint8Array; deadline: IntLike }
export interface Payload { namespace_id: IntLike; user: string; nonce: IntLike; recover_info: string }
export declare const STATUSES: readonly MachineStatus[];
export declare const REASONS: readonly Reason[];
export declare const ZERO_ID: Hex;
export declare const DEPHY_KIND: 1573;
export declare function checkMessage(msg: Message): Message;
export declare function messageToJson(msg: Message): string;
export declare function parseMessage(content: string): Message;
export declare function recoverInfoToJson(info: { signature: Uint8Array | number[]; extra_data: Uint8Array | number[]; deadline: IntLike }): string;
export declare function parseRecoverInfo(text: string): RecoverInfo;
export declare function payloadToJson(payload: Omit<Payload, 'recover_info'> & { recover_info: string | RecoverInfo }): string;
export declare function parsePayload(text: string): Payload;
export interface ParsedDephyEvent { id: Hex; author: Hex; created_at: number; session: string; machine: Hex; message: Message }
export interface BuildOptions { created_at?: number; tags?: string[][] }
export declare function buildDephyEvent(secretKey: SecretKey, session: string, machine: Hex, message: Message, options?: BuildOptions): Promise<NostrEvent>;
export declare function requestEvent(secretKey: SecretKey, fields: { session: string; machine: Hex; to_status: MachineStatus; reason: Reason; initial_request?: Hex | null; payload?: string }, options?: BuildOptions): Promise<NostrEvent>;
export declare function statusEvent(machineSecretKey: SecretKey, fields: { session: string; status: MachineStatus; reason: Reason; initial_request: Hex; payload?: string }, options?: BuildOptions): Promise<NostrEvent>;
export declare function transactionEvent(secretKey: SecretKey, fields: { session: string; machine: Hex; user: string; tokens: IntLike }, options?: BuildOptions): Promise<NostrEvent>;
export declare function parseDephyEvent(event: unknown, session?: string): Promise<ParsedDephyEvent>;

// authorization.js
export interface Wallet { publicKey: Uint8Array | string | { toBase58(): string } | { toBytes(): Uint8Array }; signMessage(message: Uint8Array): Promise<Uint8Array> }
export interface AuthorizationParams { namespace: string; namespaceId: IntLike; nonce: IntLike; deadline: IntLike; extraData?: Uint8Array | Hex }
export declare const DIGEST_PREFIX: 'DePHY vending machine/';
export declare function authorizationMessage(extraData: Uint8Array | Hex, namespaceId: IntLike, nonce: IntLike, deadline: IntLike): Uint8Array;
export declare function authorizationDigest(namespace: string, extraData: Uint8Array | Hex, namespaceId: IntLike, nonce: IntLike, deadline: IntLike): string;
export declare function walletAddress(publicKey: Wallet['publicKey']): string;
export declare function keypairWallet(seed: Uint8Array | Hex): { publicKey: Uint8Array; signMessage(message: Uint8Array): Promise<Uint8Array> };
export declare function signAuthorization(wallet: Wallet, params: AuthorizationParams): Promise<RecoverInfo>;
export declare function signedPayload(wallet: Wallet, params: AuthorizationParams): Promise<Payload>;
export declare function signedPayloadJson(wallet: Wallet, params: AuthorizationParams): Promise<string>;
export declare function verifyAuthorization(payload: Payload | string, namespaceId: IntLike, namespace: string, now: IntLike): { user: string; namespace_id: IntLike; nonce: IntLike; deadline: IntLike };

// signer.js
export interface Signer { getPublicKey?(): Promise<Hex>; signEvent(template: EventTemplate): Promise<NostrEvent> }
export declare function secretKeySigner(secretKey: SecretKey): Required<Signer>;
export declare function authEvent(signer: Signer, relayUrl: string, challenge: string): Promise<NostrEvent>;
export declare function nip98Header(signer: Signer, url: string, method?: string): Promise<string>;

// logapi.js
export interface FetchOptions { fetch?: typeof fetch; headers?: Record<string, string> }
export interface CheckpointBody extends Checkpoint { event: NostrEvent }
export interface InclusionProofBody { event_id: Hex; leaf_index: number; received_ms: number; tree_size: number; leaf_hash: Hex; root_hash: Hex; audit_path: Hex[] }
export interface Stage { stage: 'relay key' | 'checkpoint' | 'proof' | 'leaf' | 'inclusion'; ok: boolean; detail: string; steps?: CheckStep[] | InclusionStep[] }
export interface LogVerification {
  ok: boolean;
  error: DephyError | null;
  stages: Stage[];
  checkpoint: Checkpoint | null;
  proof: InclusionProofBody | null;
  inclusion: (InclusionResult & { leafIndex: number | null; receivedMs: number | null; leafHash: Hex | null; servedLeafHash: Hex | null }) | null;
}
export declare function httpBase(relayUrl: string): string;
export declare function getJson(url: string, options?: FetchOptions): Promise<any>;
export declare function fetchRelayInfo(relayUrl: string, options?: FetchOptions): Promise<any>;
export declare function fetchCheckpoint(relayUrl: string, options?: FetchOptions): Promise<CheckpointBody>;
export declare function fetchCheckpoints(relayUrl: string, range?: { from?: number; limit?: number }, options?: FetchOptions): Promise<{ checkpoints: CheckpointBody[] }>;
export declare function fetchInclusionProof(relayUrl: string, eventId: Hex, treeSize?: number | null, options?: FetchOptions): Promise<InclusionProofBody>;
export declare function fetchConsistencyProof(relayUrl: string, first: number, second: number, options?: FetchOptions): Promise<{ first: number; second: number; proof: Hex[] }>;
export declare function fetchEntries(relayUrl: string, start: number, end: number, options?: FetchOptions): Promise<{ tree_size: number; entries: { index: number; seq: number; event_id: Hex; received_ms: number }[] }>;
export declare function fetchEventsAfter(relayUrl: string, after: number, options?: FetchOptions & { limit?: number; signer?: Signer }): Promise<{ events: { seq: number; event: NostrEvent }[]; next_after: number; truncated: boolean }>;
export declare function inclusionResponseSteps(eventId: Hex, checkpoint: Pick<Checkpoint, 'tree_size' | 'root_hash'>, proof: unknown): Promise<NonNullable<LogVerification['inclusion']>>;
export declare function verifyEventInLog(relayUrl: string, eventId: Hex, options?: FetchOptions & { relayPubkey?: Hex; checkpointBody?: CheckpointBody; proofFilter?(proof: InclusionProofBody): InclusionProofBody }): Promise<LogVerification>;
export declare function verifyCheckpointsConsistent(relayUrl: string, older: Checkpoint, newer: Checkpoint, options?: FetchOptions & { proofFilter?(proof: Hex[]): Hex[] }): Promise<ConsistencyResult & { proof: Hex[] }>;

// relay.js
export interface SubscribeOptions {
  afterSeq?: number;
  pageLimit?: number;
  verify?: boolean;
  onEvent?(event: NostrEvent, seq: number | null): void;
  onEose?(info: { first: boolean; position: number | null }): void;
  onClosed?(reason: string): void;
}
export interface Subscription { readonly id: string; readonly position: number | null; close(): void }
export type RelayStatus = 'connecting' | 'open' | 'authenticated' | 'disconnected' | 'closed';
export interface RelayClientOptions {
  WebSocket?: typeof WebSocket;
  signer?: Signer;
  autoAuth?: boolean;
  reconnect?: boolean;
  backoff?: { minMs?: number; maxMs?: number };
  publishTimeoutMs?: number;
  connectTimeoutMs?: number;
  onNotice?(text: string): void;
  onError?(error: Error): void;
  onStatus?(status: RelayStatus): void;
}
export declare class RelayClient {
  constructor(url: string, options?: RelayClientOptions);
  readonly url: string;
  readonly status: RelayStatus;
  readonly authenticated: Hex | null;
  readonly connections: number;
  connect(): Promise<void>;
  authenticate(): Promise<Hex>;
  publish(event: NostrEvent): Promise<{ accepted: boolean; message: string }>;
  subscribe(filters: Record<string, unknown>[], options?: SubscribeOptions): Subscription;
  dropConnection(): void;
  close(): void;
}
