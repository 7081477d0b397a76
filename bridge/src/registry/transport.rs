//! The HTTP transport of the Solana registry's JSON-RPC calls, with a bound on the reply size.
//!
//! `solana-rpc-client`'s own `HttpSender` reads the whole body (`response.json()`) before
//! parsing, bounded only by its timeout: a hostile or broken endpoint could make the node
//! buffer gigabytes. [`CappedSender`] is a drop-in [`RpcSender`] that refuses a reply whose
//! `Content-Length` exceeds `max_bytes` and otherwise reads the body chunk by chunk, giving
//! up as soon as more than `max_bytes` (after decompression) have arrived, before any
//! parsing. The JSON-RPC envelope is then handled like `HttpSender` does (error objects become
//! `RpcResponseError`; the `result` is returned).

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use solana_rpc_client::rpc_sender::{RpcSender, RpcTransportStats};
use solana_rpc_client_api::client_error::Result as ClientResult;
use solana_rpc_client_api::error_object::RpcErrorObject;
use solana_rpc_client_api::request::{RpcError, RpcRequest, RpcResponseErrorData};

/// Default bound on one JSON-RPC reply (`bridge.registry.max_response_bytes`): about 20,000
/// `NodeEntry` accounts in a `getProgramAccounts` reply.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A JSON-RPC over HTTP sender that reads at most `max_bytes` of a reply.
pub struct CappedSender {
    url: String,
    client: reqwest::Client,
    max_bytes: usize,
    request_id: AtomicU64,
    stats: RwLock<RpcTransportStats>,
}

impl CappedSender {
    /// `timeout` bounds the whole HTTP exchange (a backstop: callers bound each call too).
    pub fn new(url: String, timeout: Duration, max_bytes: usize) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .pool_idle_timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { url, client, max_bytes, request_id: AtomicU64::new(0), stats: RwLock::default() })
    }

    /// Reads the body, failing once it exceeds the cap.
    async fn read_capped(&self, mut response: reqwest::Response) -> ClientResult<Vec<u8>> {
        let too_large = |got: String| {
            RpcError::RpcRequestError(format!(
                "reply larger than {} bytes ({got}); refused before parsing (bridge.registry.max_response_bytes)",
                self.max_bytes
            ))
        };
        if let Some(length) = response.content_length()
            && length > self.max_bytes as u64
        {
            return Err(too_large(format!("Content-Length {length}")).into());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(too_large(format!("more than {} bytes read", body.len() + chunk.len())).into());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[async_trait]
impl RpcSender for CappedSender {
    async fn send(&self, request: RpcRequest, params: serde_json::Value) -> ClientResult<serde_json::Value> {
        let started = Instant::now();
        let id = self.request_id.fetch_add(1, Ordering::Relaxed);
        let body = request.build_request_json(id, params).to_string();
        let result = async {
            let response = self
                .client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await?;
            let response = response.error_for_status()?;
            let body = self.read_capped(response).await?;
            let mut json: serde_json::Value = serde_json::from_slice(&body)?;
            if !json.is_object() {
                return Err(RpcError::RpcRequestError("RPC response is not a JSON object".into()).into());
            }
            if json["error"].is_object() {
                return Err(match serde_json::from_value::<RpcErrorObject>(json["error"].take()) {
                    Ok(e) => RpcError::RpcResponseError {
                        code: e.code,
                        message: e.message,
                        data: RpcResponseErrorData::Empty,
                    },
                    Err(e) => RpcError::RpcRequestError(format!("malformed RPC error object: {e}")),
                }
                .into());
            }
            Ok(json["result"].take())
        }
        .await;
        let mut stats = self.stats.write().unwrap_or_else(|p| p.into_inner());
        stats.request_count += 1;
        stats.elapsed_time += started.elapsed();
        result
    }

    fn get_transport_stats(&self) -> RpcTransportStats {
        self.stats.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn url(&self) -> String {
        self.url.clone()
    }
}
