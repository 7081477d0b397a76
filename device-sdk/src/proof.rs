//! Checking that the relay logged one's own events: fetch the relay's latest signed checkpoint
//! (kind 1574) and an RFC 9162 inclusion proof for an event over the relay's HTTP API
//! (`/log/checkpoint`, `/log/proof/inclusion`), and verify both with the shared `dephy-log`
//! library. Nothing the relay says is trusted: the leaf hash is recomputed from the event id
//! and the receive time, and the proof must lead to the root the relay *signed*.

use bytes_free_http::get_json;
use dephy_log::{Checkpoint, Hash};
use nostr::{Event, EventId, PublicKey};
use serde_json::Value;

pub use dephy_log;

/// Why an event's inclusion could not be established.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error("relay URL {0:?} must start with ws://, wss://, http:// or https://")]
    BadUrl(String),
    #[error("https is not supported by the SDK's HTTP client; use an http:// or ws:// URL ({0})")]
    Tls(String),
    #[error("cannot fetch {url}: {reason}")]
    Http { url: String, reason: String },
    #[error("{url} answered {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("{url} answered unexpected JSON: {reason}")]
    BadResponse { url: String, reason: String },
    #[error("the relay's checkpoint does not verify: {0}")]
    Checkpoint(#[source] dephy_log::Error),
    #[error("the inclusion proof does not verify against the signed checkpoint: {0}")]
    Inclusion(#[source] dephy_log::Error),
    #[error("the relay's leaf hash {served} is not the hash of the event id and receive time ({computed})")]
    LeafMismatch { served: String, computed: String },
}

/// An event proven to be in the relay's log.
#[derive(Debug, Clone)]
pub struct Included {
    pub leaf_index: u64,
    pub received_ms: u64,
    /// The signed checkpoint the proof verifies against.
    pub checkpoint: Checkpoint,
    pub relay_pubkey: PublicKey,
}

/// The relay's HTTP base URL (`ws://h:p/` → `http://h:p`).
pub fn http_base(relay_url: &str) -> Result<String, ProofError> {
    let (scheme, rest) = relay_url.split_once("://").ok_or_else(|| ProofError::BadUrl(relay_url.into()))?;
    let scheme = match scheme {
        "ws" | "http" => "http",
        "wss" | "https" => return Err(ProofError::Tls(relay_url.into())),
        _ => return Err(ProofError::BadUrl(relay_url.into())),
    };
    Ok(format!("{scheme}://{}", rest.trim_end_matches('/')))
}

/// The relay's key from its NIP-11 document.
pub async fn relay_pubkey(relay_url: &str) -> Result<PublicKey, ProofError> {
    let url = format!("{}/", http_base(relay_url)?);
    let doc = get_json(&url, Some("application/nostr+json")).await?;
    doc.get("pubkey")
        .and_then(Value::as_str)
        .and_then(|p| PublicKey::from_hex(p).ok())
        .ok_or_else(|| ProofError::BadResponse { url, reason: "NIP-11 document has no hex pubkey".into() })
}

/// The relay's latest checkpoint, authenticated with `relay_pubkey`.
pub async fn latest_checkpoint(relay_url: &str, relay_pubkey: &PublicKey) -> Result<Checkpoint, ProofError> {
    let url = format!("{}/log/checkpoint", http_base(relay_url)?);
    let body = get_json(&url, None).await?;
    let event = body
        .get("event")
        .and_then(|e| serde_json::from_value::<Event>(e.clone()).ok())
        .ok_or_else(|| ProofError::BadResponse { url: url.clone(), reason: "no checkpoint event".into() })?;
    Checkpoint::from_event(&event, Some(relay_pubkey)).map_err(ProofError::Checkpoint)
}

/// Verifies an `/log/proof/inclusion` answer for `event_id` against a signed checkpoint.
pub fn verify_inclusion_response(
    event_id: &EventId,
    checkpoint: &Checkpoint,
    proof: &Value,
) -> Result<(u64, u64), String> {
    let index = proof.get("leaf_index").and_then(Value::as_u64).ok_or("no leaf_index")?;
    let received_ms = proof.get("received_ms").and_then(Value::as_u64).ok_or("no received_ms")?;
    let path: Vec<Hash> = proof
        .get("audit_path")
        .and_then(Value::as_array)
        .ok_or("no audit_path")?
        .iter()
        .map(|h| h.as_str().and_then(hash_from_hex).ok_or("audit_path holds a non-hash"))
        .collect::<Result<_, _>>()?;
    let leaf = dephy_log::event_leaf_hash(event_id.as_bytes(), received_ms);
    if let Some(served) = proof.get("leaf_hash").and_then(Value::as_str)
        && served != hex::encode(leaf)
    {
        return Err(format!("leaf:{served}:{}", hex::encode(leaf)));
    }
    dephy_log::verify_inclusion(&leaf, index, checkpoint.tree_size, &path, &checkpoint.root_hash)
        .map_err(|e| format!("proof:{e}"))?;
    Ok((index, received_ms))
}

/// Proves that `event_id` is in the relay's log: authenticates the latest checkpoint with the
/// relay's key (`relay_pubkey`, or the NIP-11 one when `None`) and verifies the inclusion proof
/// against it.
pub async fn verify_event(
    relay_url: &str,
    relay_pubkey: Option<PublicKey>,
    event_id: &EventId,
) -> Result<Included, ProofError> {
    let relay_pubkey = match relay_pubkey {
        Some(pk) => pk,
        None => self::relay_pubkey(relay_url).await?,
    };
    let checkpoint = latest_checkpoint(relay_url, &relay_pubkey).await?;
    let url = format!(
        "{}/log/proof/inclusion?id={}&tree_size={}",
        http_base(relay_url)?,
        event_id.to_hex(),
        checkpoint.tree_size
    );
    let proof = get_json(&url, None).await?;
    match verify_inclusion_response(event_id, &checkpoint, &proof) {
        Ok((leaf_index, received_ms)) => Ok(Included { leaf_index, received_ms, checkpoint, relay_pubkey }),
        Err(e) if e.starts_with("leaf:") => {
            let mut parts = e.splitn(3, ':').skip(1);
            Err(ProofError::LeafMismatch {
                served: parts.next().unwrap_or_default().into(),
                computed: parts.next().unwrap_or_default().into(),
            })
        }
        Err(e) if e.starts_with("proof:") => {
            let index = proof["leaf_index"].as_u64().unwrap_or_default();
            let path: Vec<Hash> = proof["audit_path"]
                .as_array()
                .map(|a| a.iter().filter_map(|h| h.as_str().and_then(hash_from_hex)).collect())
                .unwrap_or_default();
            let leaf =
                dephy_log::event_leaf_hash(event_id.as_bytes(), proof["received_ms"].as_u64().unwrap_or_default());
            let err = dephy_log::verify_inclusion(&leaf, index, checkpoint.tree_size, &path, &checkpoint.root_hash)
                .expect_err("failed above");
            Err(ProofError::Inclusion(err))
        }
        Err(reason) => Err(ProofError::BadResponse { url, reason }),
    }
}

fn hash_from_hex(text: &str) -> Option<Hash> {
    let mut hash = [0; 32];
    hex::decode_to_slice(text, &mut hash).ok()?;
    Some(hash)
}

/// A minimal HTTP/1.1 GET returning JSON, on hyper (no TLS).
mod bytes_free_http {
    use std::time::Duration;

    use http_body_util::{BodyExt as _, Empty};
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;
    use serde_json::Value;

    use super::ProofError;

    const TIMEOUT: Duration = Duration::from_secs(15);

    pub async fn get_json(url: &str, accept: Option<&str>) -> Result<Value, ProofError> {
        let http = |reason: String| ProofError::Http { url: url.to_string(), reason };
        let uri: hyper::Uri = url.parse().map_err(|e| http(format!("bad URL: {e}")))?;
        let host = uri.host().ok_or_else(|| http("no host".into()))?.to_string();
        let port = uri.port_u16().unwrap_or(80);
        let fetch = async {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| http(e.to_string()))?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.map_err(|e| http(e.to_string()))?;
            tokio::spawn(conn);
            let path = uri.path_and_query().map_or("/", |p| p.as_str());
            let mut request = hyper::Request::get(path).header(hyper::header::HOST, format!("{host}:{port}"));
            if let Some(accept) = accept {
                request = request.header(hyper::header::ACCEPT, accept);
            }
            let request = request.body(Empty::<Bytes>::new()).map_err(|e| http(e.to_string()))?;
            let response = sender.send_request(request).await.map_err(|e| http(e.to_string()))?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.map_err(|e| http(e.to_string()))?.to_bytes();
            Ok::<_, ProofError>((status, body))
        };
        let (status, body) =
            tokio::time::timeout(TIMEOUT, fetch).await.map_err(|_| http(format!("no answer within {TIMEOUT:?}")))??;
        if status != 200 {
            return Err(ProofError::Status {
                url: url.into(),
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| ProofError::BadResponse { url: url.into(), reason: e.to_string() })
    }
}
