//! `dephy-relay audit`: checks a running relay's verifiable log from the outside, through its
//! public interfaces only (NIP-11, the `/log/*` HTTP API and a WebSocket `REQ`):
//!
//! 1. the relay's key, from its NIP-11 document;
//! 2. every signed checkpoint: signature and author, tree sizes that never decrease (equal
//!    sizes, equal roots), and a consistency proof between each consecutive pair;
//!    with `--rpc URL`, every checkpoint's Solana anchor (`crate::anchor::verify`: a successful
//!    transaction whose SPL memo is exactly the checkpoint's tree size and root);
//! 3. with `--state FILE`, that the latest checkpoint extends the one an earlier audit saw
//!    (the file is then updated);
//! 4. the newest events served over WebSocket: id, signature, and an inclusion proof at the
//!    latest checkpoint (events logged after it are counted as not yet checkpointed);
//! 5. the log's entries: every leaf (beyond 10,000 leaves, 200 random ones) proven against
//!    the latest checkpoint, with its leaf hash recomputed from (event id, `received_ms`).
//!
//! The last line is the verdict: `audit: OK (...)` with exit code 0, or `audit: FAILED: ...`
//! with exit code 1. When the audit cannot be carried out (bad argument, unreachable relay,
//! unusable state file), the message says what to fix and the exit code is 2.

mod http;
mod state;
mod ws;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;

use dephy_log::{Checkpoint, Hash};
use nostr::{Event, PublicKey};
use rand::Rng as _;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

use http::{Endpoint, Response};
use state::Seen;

/// Most checkpoints or entries the relay serves per request.
const PAGE: u64 = crate::logapi::MAX_PAGE;
/// Logs of up to this many leaves are checked leaf by leaf, larger ones by random sample.
const FULL_CHECK_MAX: u64 = 10_000;
/// How many random leaves are checked in a larger log.
const RANDOM_LEAVES: usize = 200;
/// What the relay's 400 answer says when an event was logged after the requested tree size.
const BEYOND_TREE_SIZE: &str = "not within tree_size";
/// How many failed events or leaves one report names.
const MAX_REPORTED_FAILURES: usize = 10;

/// Why an audit did not end with OK.
#[derive(Debug)]
pub enum AuditError {
    /// The relay failed a check (exit code 1).
    Failed(String),
    /// The audit could not be carried out (exit code 2).
    Incomplete(String),
}

type Result<T> = std::result::Result<T, AuditError>;

/// Runs `dephy-relay audit`, printing what was checked and the verdict; returns the exit code.
pub async fn run(url: &str, state_file: Option<&Path>, sample: u32, rpc: Option<&str>) -> ExitCode {
    match audit(url, state_file, sample, rpc).await {
        Ok(cp) => {
            println!("audit: OK (tree_size {}, root {})", cp.tree_size, hex::encode(cp.root_hash));
            ExitCode::SUCCESS
        }
        Err(AuditError::Failed(message)) => {
            println!("audit: FAILED: {message}");
            ExitCode::from(1)
        }
        Err(AuditError::Incomplete(message)) => {
            eprintln!("audit: cannot audit: {message}");
            ExitCode::from(2)
        }
    }
}

async fn audit(url: &str, state_file: Option<&Path>, sample: u32, rpc: Option<&str>) -> Result<Checkpoint> {
    let endpoint = Endpoint::parse(url).map_err(AuditError::Incomplete)?;
    let earlier = match state_file {
        Some(path) => state::load(path)?.map(|seen| (path, seen)),
        None => None,
    };
    let relay = Relay { key: relay_key(&endpoint).await?, endpoint };
    println!("relay {url}: key {}", relay.key.to_hex());

    let Some(latest) = relay.latest_checkpoint().await? else {
        return Err(match &earlier {
            Some((path, seen)) => AuditError::Failed(format!(
                "the relay serves no checkpoint, but an earlier audit saw one of tree_size {} (state file {})",
                seen.checkpoint.tree_size,
                path.display()
            )),
            None => AuditError::Incomplete(
                "the relay has not signed a checkpoint yet, so there is nothing to audit; \
                 it signs one every [log] checkpoint_interval_secs once new events arrive"
                    .to_string(),
            ),
        });
    };
    let anchored = relay.check_checkpoints(&latest).await?;
    check_anchors(&anchored, rpc).await?;
    match &earlier {
        Some((path, seen)) => relay.check_extends_earlier(path, seen, &latest).await?,
        None if state_file.is_some() => println!("state: no earlier checkpoint, this audit starts the history"),
        None => {}
    }
    relay.check_sample(&latest, sample).await?;
    relay.check_entries(&latest).await?;
    if let Some(path) = state_file {
        state::save(path, &Seen { relay_pubkey: relay.key, checkpoint: latest.clone() })?;
        println!("state: saved the checkpoint of tree_size {} to {}", latest.tree_size, path.display());
    }
    Ok(latest)
}

/// Step 2b: verifies the Solana anchor of each checkpoint in `anchored` over `rpc`.
async fn check_anchors(anchored: &[Checkpoint], rpc: Option<&str>) -> Result<()> {
    use solana_rpc_client::nonblocking::rpc_client::RpcClient;

    let Some(rpc_url) = rpc else {
        if anchored.is_empty() {
            println!("anchors: no checkpoint carries a Solana anchor");
        } else {
            println!(
                "anchors: {} checkpoints carry a Solana anchor, not checked (pass --rpc URL to verify them)",
                anchored.len()
            );
        }
        return Ok(());
    };
    if anchored.is_empty() {
        println!("anchors: no checkpoint carries a Solana anchor, nothing to verify on {rpc_url}");
        return Ok(());
    }
    let client =
        RpcClient::new_with_commitment(rpc_url.to_string(), solana_commitment_config::CommitmentConfig::confirmed());
    client.get_version().await.map_err(|e| {
        AuditError::Incomplete(format!("cannot reach the Solana RPC {rpc_url}: {e}; check the --rpc URL"))
    })?;
    let mut payers = BTreeSet::new();
    let mut failures = Failures::default();
    for cp in anchored {
        let signature = cp.anchor.as_deref().unwrap_or_default();
        let verified = crate::anchor::verify(&client, signature, cp.tree_size, &cp.root_hash).await.map_err(|e| {
            AuditError::Failed(format!(
                "the anchor of the checkpoint of tree_size {} (root {}) does not verify: {e}",
                cp.tree_size,
                hex::encode(cp.root_hash)
            ))
        });
        if let Some(verified) = failures.absorb(verified)? {
            payers.insert(verified.fee_payer);
        }
    }
    failures.finish("anchors")?;
    println!(
        "anchors: {} anchored checkpoints verified on {rpc_url} (SPL memo of tree_size and root; fee payer {})",
        anchored.len(),
        payers.into_iter().collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// `GET path`; a relay that cannot be reached makes the audit incomplete.
async fn get(endpoint: &Endpoint, path: &str, accept: &str) -> Result<Response> {
    http::get(endpoint, path, accept).await.map_err(|e| {
        AuditError::Incomplete(format!(
            "cannot GET {}: {e}; check the URL and that the relay is running",
            endpoint.http_url(path)
        ))
    })
}

/// The relay's key, from its NIP-11 document.
async fn relay_key(endpoint: &Endpoint) -> Result<PublicKey> {
    #[derive(Deserialize)]
    struct RelayInfo {
        pubkey: Option<PublicKey>,
    }
    let response = get(endpoint, "/", "application/nostr+json").await?;
    let not_a_relay = |why: String| {
        AuditError::Incomplete(format!(
            "{} did not serve a NIP-11 document ({why}); is this the relay's URL?",
            endpoint.http_url("/")
        ))
    };
    if response.status != 200 {
        return Err(not_a_relay(format!("status {}", response.status)));
    }
    let info: RelayInfo = serde_json::from_slice(&response.body).map_err(|e| not_a_relay(e.to_string()))?;
    info.pubkey.ok_or_else(|| {
        AuditError::Incomplete(
            "the relay's NIP-11 document has no pubkey to authenticate its checkpoints with".to_string(),
        )
    })
}

/// A 200 body as JSON; a malformed one fails the audit.
fn parse<T: DeserializeOwned>(path: &str, response: &Response) -> Result<T> {
    serde_json::from_slice(&response.body)
        .map_err(|e| AuditError::Failed(format!("GET {path} returned malformed JSON: {e}")))
}

/// The error for an unexpected status: a refusal (4xx) fails the audit, anything else (a server
/// error) makes it incomplete.
fn unexpected(path: &str, response: &Response) -> AuditError {
    let message = format!("GET {path} answered {}: {}", response.status, error_message(response));
    if (400..500).contains(&response.status) {
        AuditError::Failed(message)
    } else {
        AuditError::Incomplete(format!("{message}; try again later"))
    }
}

/// The `error` of the API's JSON error body, or the start of the body.
fn error_message(response: &Response) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: String,
    }
    match serde_json::from_slice::<ErrorBody>(&response.body) {
        Ok(body) => body.error,
        Err(_) => String::from_utf8_lossy(&response.body).chars().take(200).collect(),
    }
}

fn decode_hash(digits: &str) -> std::result::Result<Hash, hex::FromHexError> {
    let mut hash = [0; 32];
    hex::decode_to_slice(digits, &mut hash)?;
    Ok(hash)
}

/// Serde: a hash as 64 hex digits.
fn hex_hash<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Hash, D::Error> {
    decode_hash(&String::deserialize(deserializer)?).map_err(D::Error::custom)
}

/// Serde: a list of hashes as 64 hex digits each.
fn hex_hashes<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Vec<Hash>, D::Error> {
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|digits| decode_hash(digits).map_err(D::Error::custom))
        .collect()
}

/// A checkpoint as the API serves it: only its signed event counts.
#[derive(Deserialize)]
struct ServedCheckpoint {
    event: Event,
}

/// `GET /log/proof/inclusion`, the fields the audit uses.
#[derive(Deserialize)]
struct InclusionProof {
    leaf_index: u64,
    received_ms: u64,
    #[serde(deserialize_with = "hex_hash")]
    leaf_hash: Hash,
    #[serde(deserialize_with = "hex_hashes")]
    audit_path: Vec<Hash>,
}

/// The answer to an inclusion proof request.
enum Lookup {
    Proof(InclusionProof),
    /// The event is logged after the requested tree size.
    NotYetCheckpointed,
    NotInLog,
}

/// One leaf as `GET /log/entries` serves it.
#[derive(Deserialize)]
struct Entry {
    index: u64,
    #[serde(deserialize_with = "hex_hash")]
    event_id: Hash,
    received_ms: u64,
}

/// Verifies that leaf `index` of the checkpoint's tree is `(event_id, received_ms)`.
fn check_leaf(cp: &Checkpoint, index: u64, event_id: &Hash, received_ms: u64, proof: &InclusionProof) -> Result<()> {
    let leaf_hash = dephy_log::event_leaf_hash(event_id, received_ms);
    dephy_log::verify_inclusion(&leaf_hash, index, cp.tree_size, &proof.audit_path, &cp.root_hash).map_err(|e| {
        AuditError::Failed(format!(
            "leaf {index} (event {}, received_ms {received_ms}) is not proven in the checkpoint of tree_size {} \
             (root {}): {e}",
            hex::encode(event_id),
            cp.tree_size,
            hex::encode(cp.root_hash)
        ))
    })
}

/// Failed checks of single events or leaves, collected so that one report names them all.
#[derive(Default)]
struct Failures {
    count: usize,
    /// The first [`MAX_REPORTED_FAILURES`] messages.
    messages: Vec<String>,
}

impl Failures {
    /// Records a failed check; an audit that cannot go on still stops.
    fn absorb<T>(&mut self, result: Result<T>) -> Result<Option<T>> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(AuditError::Failed(message)) => {
                self.count += 1;
                if self.messages.len() < MAX_REPORTED_FAILURES {
                    self.messages.push(message);
                }
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Fails the audit if any check of `what` failed.
    fn finish(mut self, what: &str) -> Result<()> {
        match self.count {
            0 => Ok(()),
            1 => Err(AuditError::Failed(self.messages.remove(0))),
            count => {
                let more = count - self.messages.len();
                let rest = if more > 0 { format!("; and {more} more") } else { String::new() };
                Err(AuditError::Failed(format!("{count} {what} failed: {}{rest}", self.messages.join("; "))))
            }
        }
    }
}

/// The audited relay: where it listens and the key that signs its checkpoints.
struct Relay {
    endpoint: Endpoint,
    key: PublicKey,
}

impl Relay {
    async fn get(&self, path: &str) -> Result<Response> {
        get(&self.endpoint, path, "application/json").await
    }

    /// `GET path`, expecting 200 and a JSON body.
    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let response = self.get(path).await?;
        if response.status != 200 {
            return Err(unexpected(path, &response));
        }
        parse(path, &response)
    }

    /// Authenticates a checkpoint event with the relay's key.
    fn authenticate(&self, event: &Event) -> Result<Checkpoint> {
        Checkpoint::from_event(event, Some(&self.key)).map_err(|e| {
            AuditError::Failed(format!(
                "checkpoint event {} is not a checkpoint signed by the relay's key: {e}",
                event.id
            ))
        })
    }

    /// The latest checkpoint, authenticated; `None` when the relay has signed none.
    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>> {
        const PATH: &str = "/log/checkpoint";
        let response = self.get(PATH).await?;
        match response.status {
            200 => self.authenticate(&parse::<ServedCheckpoint>(PATH, &response)?.event).map(Some),
            404 => Ok(None),
            _ => Err(unexpected(PATH, &response)),
        }
    }

    /// Step 2: authenticates every checkpoint, oldest first, checks that each extends the one
    /// before, and that `latest` is among them. Returns the checkpoints that carry an anchor.
    async fn check_checkpoints(&self, latest: &Checkpoint) -> Result<Vec<Checkpoint>> {
        #[derive(Deserialize)]
        struct Page {
            checkpoints: Vec<ServedCheckpoint>,
        }
        let (mut count, mut proofs, mut latest_listed) = (0u64, 0u64, false);
        let mut previous: Option<Checkpoint> = None;
        let mut anchored = Vec::new();
        let mut from = 0;
        loop {
            let path = format!("/log/checkpoints?from={from}&limit={PAGE}");
            let page: Page = self.get_json(&path).await?;
            let served = page.checkpoints.len() as u64;
            for ServedCheckpoint { event } in page.checkpoints {
                let cp = self.authenticate(&event)?;
                if cp.tree_size < from {
                    return Err(AuditError::Failed(format!(
                        "GET {path} listed the checkpoint of tree_size {} (event {})",
                        cp.tree_size, event.id
                    )));
                }
                if let Some(prev) = &previous {
                    self.check_successor(prev, &cp).await?;
                    proofs += u64::from(prev.tree_size > 0 && cp.tree_size > prev.tree_size);
                }
                if cp.tree_size == latest.tree_size {
                    if cp.root_hash != latest.root_hash {
                        return Err(AuditError::Failed(format!(
                            "the latest checkpoint (tree_size {}) has root {}, but the listed checkpoint of that size has root {}",
                            latest.tree_size,
                            hex::encode(latest.root_hash),
                            hex::encode(cp.root_hash)
                        )));
                    }
                    latest_listed = true;
                }
                count += 1;
                if cp.anchor.is_some() {
                    anchored.push(cp.clone());
                }
                previous = Some(cp);
            }
            match previous.as_ref().and_then(|cp| cp.tree_size.checked_add(1)) {
                Some(next) if served == PAGE => from = next,
                _ => break,
            }
        }
        if !latest_listed {
            return Err(AuditError::Failed(format!(
                "the latest checkpoint (tree_size {}) is missing from /log/checkpoints",
                latest.tree_size
            )));
        }
        println!(
            "checkpoints: {count} signed by the relay's key, tree sizes never decrease, \
             {proofs} consistency proofs verified; latest tree_size {}",
            latest.tree_size
        );
        Ok(anchored)
    }

    /// Checks that checkpoint `next`, listed right after `prev`, extends it.
    async fn check_successor(&self, prev: &Checkpoint, next: &Checkpoint) -> Result<()> {
        let describe = |relation: &str| {
            format!(
                "checkpoint tree_size {} (root {}) {relation} checkpoint tree_size {} (root {})",
                next.tree_size,
                hex::encode(next.root_hash),
                prev.tree_size,
                hex::encode(prev.root_hash)
            )
        };
        if next.tree_size < prev.tree_size {
            return Err(AuditError::Failed(describe("is listed after the larger")));
        }
        if next.tree_size == prev.tree_size && next.root_hash != prev.root_hash {
            return Err(AuditError::Failed(describe("has the same size but not the same root as")));
        }
        self.check_extension(prev, next, |e| format!("{}: {e}", describe("is not consistent with the earlier"))).await
    }

    /// Step 3: the latest checkpoint extends the one an earlier audit saw.
    async fn check_extends_earlier(&self, path: &Path, seen: &Seen, latest: &Checkpoint) -> Result<()> {
        let earlier = &seen.checkpoint;
        if seen.relay_pubkey != self.key {
            return Err(AuditError::Failed(format!(
                "state file {} was written for the relay with key {}, but this relay's key is {}; \
                 audit that relay, or use another state file for this one",
                path.display(),
                seen.relay_pubkey.to_hex(),
                self.key.to_hex()
            )));
        }
        if latest.tree_size < earlier.tree_size {
            return Err(AuditError::Failed(format!(
                "the relay's latest checkpoint has tree_size {}, smaller than the tree_size {} seen earlier \
                 (state file {}): the log lost leaves",
                latest.tree_size,
                earlier.tree_size,
                path.display()
            )));
        }
        self.check_extension(earlier, latest, |e| {
            format!(
                "the relay's latest checkpoint (tree_size {}, root {}) is not consistent with the checkpoint \
                 seen earlier (tree_size {}, root {}, state file {}): {e}; the log's history was rewritten",
                latest.tree_size,
                hex::encode(latest.root_hash),
                earlier.tree_size,
                hex::encode(earlier.root_hash),
                path.display()
            )
        })
        .await?;
        println!(
            "state: the latest checkpoint extends the one seen earlier (tree_size {} -> {})",
            earlier.tree_size, latest.tree_size
        );
        Ok(())
    }

    /// Checks that `newer` extends `older`, whose tree size is not larger: equal roots at equal
    /// sizes, otherwise a consistency proof from the relay. `describe` words a failure.
    async fn check_extension(
        &self,
        older: &Checkpoint,
        newer: &Checkpoint,
        describe: impl FnOnce(dephy_log::Error) -> String,
    ) -> Result<()> {
        let verified = if older.tree_size == 0 {
            // The empty tree is a prefix of every tree; only its root needs checking.
            if older.root_hash == dephy_log::empty_root() {
                Ok(())
            } else {
                Err(dephy_log::Error::RootMismatch { size: 0 })
            }
        } else {
            let proof = if older.tree_size == newer.tree_size {
                Vec::new()
            } else {
                self.consistency_proof(older.tree_size, newer.tree_size).await?
            };
            older.verify_consistency_with(newer, &proof)
        };
        verified.map_err(|e| AuditError::Failed(describe(e)))
    }

    async fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>> {
        #[derive(Deserialize)]
        struct Proof {
            #[serde(deserialize_with = "hex_hashes")]
            proof: Vec<Hash>,
        }
        let proof: Proof = self.get_json(&format!("/log/proof/consistency?first={first}&second={second}")).await?;
        Ok(proof.proof)
    }

    /// The relay's inclusion proof of event `id` at the checkpoint's tree size (not verified).
    async fn inclusion_proof(&self, id: &Hash, cp: &Checkpoint) -> Result<Lookup> {
        let path = format!("/log/proof/inclusion?id={}&tree_size={}", hex::encode(id), cp.tree_size);
        let response = self.get(&path).await?;
        match response.status {
            200 => parse(&path, &response).map(Lookup::Proof),
            400 if error_message(&response).contains(BEYOND_TREE_SIZE) => Ok(Lookup::NotYetCheckpointed),
            404 => Ok(Lookup::NotInLog),
            _ => Err(unexpected(&path, &response)),
        }
    }

    /// Step 4: the newest events served over WebSocket are authentic and proven in the log.
    async fn check_sample(&self, cp: &Checkpoint, sample: u32) -> Result<()> {
        let events = ws::newest_events(&self.endpoint, sample).await?;
        let (mut proven, mut pending) = (0u64, 0u64);
        let mut failures = Failures::default();
        for event in &events {
            match failures.absorb(self.check_served_event(cp, event).await)? {
                Some(true) => proven += 1,
                Some(false) => pending += 1,
                None => {}
            }
        }
        failures.finish("served events")?;
        println!(
            "sample: {} newest events verified (id, signature): {proven} proven in the checkpoint of tree_size {}, \
             {pending} not yet checkpointed",
            events.len(),
            cp.tree_size
        );
        Ok(())
    }

    /// Verifies an event served over WebSocket and its inclusion proof; `false` when it was
    /// logged after the checkpoint.
    async fn check_served_event(&self, cp: &Checkpoint, event: &Event) -> Result<bool> {
        event.verify().map_err(|e| {
            AuditError::Failed(format!("event {} served over WebSocket does not verify: {e}", event.id))
        })?;
        let id = event.id.as_bytes();
        match self.inclusion_proof(id, cp).await? {
            Lookup::Proof(proof) => {
                let leaf_hash = dephy_log::event_leaf_hash(id, proof.received_ms);
                if proof.leaf_hash != leaf_hash {
                    return Err(AuditError::Failed(format!(
                        "leaf {} (event {}): the inclusion proof gives leaf hash {}, but the hash of the event id \
                         and received_ms {} is {}",
                        proof.leaf_index,
                        event.id,
                        hex::encode(proof.leaf_hash),
                        proof.received_ms,
                        hex::encode(leaf_hash)
                    )));
                }
                check_leaf(cp, proof.leaf_index, id, proof.received_ms, &proof)?;
                Ok(true)
            }
            Lookup::NotYetCheckpointed => Ok(false),
            Lookup::NotInLog => {
                Err(AuditError::Failed(format!("event {} is served over WebSocket but is not in the log", event.id)))
            }
        }
    }

    /// Step 5: the log's leaves, as `/log/entries` lists them, are proven in the checkpoint.
    async fn check_entries(&self, cp: &Checkpoint) -> Result<()> {
        let size = cp.tree_size;
        let mut failures = Failures::default();
        if size <= FULL_CHECK_MAX {
            let mut start = 0;
            while start < size {
                let end = (start + PAGE).min(size);
                for (index, entry) in (start..end).zip(self.entries(start, end).await?) {
                    failures.absorb(self.check_entry(cp, index, &entry).await)?;
                }
                start = end;
            }
            failures.finish("leaves")?;
            println!("entries: all {size} leaves proven in the checkpoint");
        } else {
            let picks: BTreeSet<u64> = {
                let mut rng = rand::rng();
                let mut picks = BTreeSet::new();
                while picks.len() < RANDOM_LEAVES {
                    picks.insert(rng.random_range(0..size));
                }
                picks
            };
            for index in picks {
                for entry in self.entries(index, index + 1).await? {
                    failures.absorb(self.check_entry(cp, index, &entry).await)?;
                }
            }
            failures.finish("leaves")?;
            println!("entries: {RANDOM_LEAVES} random leaves of {size} proven in the checkpoint");
        }
        Ok(())
    }

    /// Leaves `[start, end)`, all covered by the checkpoint.
    async fn entries(&self, start: u64, end: u64) -> Result<Vec<Entry>> {
        #[derive(Deserialize)]
        struct Page {
            entries: Vec<Entry>,
        }
        let path = format!("/log/entries?start={start}&end={end}");
        let page: Page = self.get_json(&path).await?;
        if page.entries.len() as u64 != end - start {
            return Err(AuditError::Failed(format!(
                "GET {path} returned {} entries, but the checkpoint covers all {} of them",
                page.entries.len(),
                end - start
            )));
        }
        Ok(page.entries)
    }

    /// Checks that `entry`, served as leaf `index`, is proven in the checkpoint.
    async fn check_entry(&self, cp: &Checkpoint, index: u64, entry: &Entry) -> Result<()> {
        let event = hex::encode(entry.event_id);
        let failed = |what: String| Err(AuditError::Failed(format!("leaf {index} (event {event}): {what}")));
        if entry.index != index {
            return failed(format!("/log/entries served leaf {} in its place", entry.index));
        }
        match self.inclusion_proof(&entry.event_id, cp).await? {
            Lookup::Proof(proof) if proof.leaf_index == index => {
                check_leaf(cp, index, &entry.event_id, entry.received_ms, &proof)
            }
            Lookup::Proof(proof) => failed(format!("the relay proves this event at leaf {} instead", proof.leaf_index)),
            Lookup::NotYetCheckpointed => failed(format!(
                "the relay says this event is not within tree_size {}, which covers the leaf",
                cp.tree_size
            )),
            Lookup::NotInLog => {
                failed("listed by /log/entries, but the relay says the event is not in the log".to_string())
            }
        }
    }
}
