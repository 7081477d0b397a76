//! WebSocket plumbing shared by every benchmark: connecting (with errors that say what to fix),
//! receiving with a timeout, and decoding the relay's NIP-01 messages.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client WebSocket to the relay.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest wait for the TCP + WebSocket handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Buffer sizes of a connection: throughput-oriented, or small for thousands of mostly idle ones.
#[derive(Debug, Clone, Copy)]
pub enum Footprint {
    /// tungstenite's defaults (128 KiB read buffer, eagerly allocated).
    Throughput,
    /// 4 KiB read buffer, so 10,000 connections do not cost the client a gigabyte.
    Lean,
}

/// Open a WebSocket to `url` with Nagle disabled (latency matters more than packet count here).
pub async fn connect(url: &str, footprint: Footprint) -> Result<Ws> {
    let config = match footprint {
        Footprint::Throughput => WebSocketConfig::default(),
        Footprint::Lean => WebSocketConfig::default().read_buffer_size(4096),
    };
    open(url, config, true).await
}

/// Open a WebSocket to `url` with Nagle's algorithm on or off, as many client libraries leave it.
pub async fn connect_with_nagle(url: &str, nagle: bool) -> Result<Ws> {
    open(url, WebSocketConfig::default().read_buffer_size(4096), !nagle).await
}

async fn open(url: &str, config: WebSocketConfig, nodelay: bool) -> Result<Ws> {
    let handshake = tokio_tungstenite::connect_async_with_config(url, Some(config), nodelay);
    match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(e)) => Err(anyhow!("cannot connect to {url}: {e}; {}", connect_hint(&e))),
        Err(_) => Err(anyhow!(
            "cannot connect to {url}: no WebSocket handshake within {}s; the relay is overloaded \
             or its accept backlog is full: lower --connect-concurrency",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// Check that the relay accepts a WebSocket at all, before spending time signing events.
pub async fn probe(url: &str) -> Result<()> {
    let mut ws = connect(url, Footprint::Lean).await?;
    // Reachability is established; how the goodbye goes does not matter.
    let _ = ws.close(None).await;
    Ok(())
}

/// What the user should do about a failed connection attempt.
fn connect_hint(error: &tungstenite::Error) -> &'static str {
    let text = error.to_string();
    if text.contains("Too many open files") {
        "this process ran out of file descriptors: raise `ulimit -n`"
    } else if text.contains("Cannot assign requested address") {
        "the client ran out of ephemeral ports: widen net.ipv4.ip_local_port_range or use fewer connections"
    } else if text.contains("Connection refused") {
        "is the relay running? start it with `cargo run --release -p dephy-relay -- serve` \
         (and pass its listen address as --url)"
    } else if let tungstenite::Error::Http(response) = error {
        if response.status().as_u16() == 503 || response.status().as_u16() == 429 {
            "the relay refused the connection, probably a connection limit (max_connections, max_connections_per_ip)"
        } else {
            "the server answered HTTP instead of upgrading: check that --url is the relay's WebSocket endpoint"
        }
    } else {
        "check --url and that the relay is running (`cargo run --release -p dephy-relay -- serve`)"
    }
}

/// A message from the relay, reduced to what the benchmarks look at.
#[derive(Debug)]
pub enum RelayMessage {
    Ok {
        id: String,
        accepted: bool,
        message: String,
    },
    Event {
        sub_id: String,
        event_id: String,
    },
    Eose {
        sub_id: String,
    },
    Closed {
        sub_id: String,
        message: String,
    },
    Notice(String),
    /// AUTH, COUNT or anything else no benchmark waits for.
    Other,
}

impl RelayMessage {
    /// Decode one text frame; a frame that is not a JSON array is an error naming the frame.
    pub fn parse(text: &str) -> Result<Self> {
        let value: Value =
            serde_json::from_str(text).with_context(|| format!("the relay sent a frame that is not JSON: {text}"))?;
        let Some(items) = value.as_array() else {
            bail!("the relay sent a frame that is not a JSON array: {text}");
        };
        let str_at = |i: usize| items.get(i).and_then(Value::as_str).unwrap_or_default().to_owned();
        Ok(match items.first().and_then(Value::as_str) {
            Some("OK") => Self::Ok {
                id: str_at(1),
                accepted: items.get(2).and_then(Value::as_bool).unwrap_or(false),
                message: str_at(3),
            },
            Some("EVENT") => Self::Event {
                sub_id: str_at(1),
                event_id: items
                    .get(2)
                    .and_then(|event| event.get("id"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            },
            Some("EOSE") => Self::Eose { sub_id: str_at(1) },
            Some("CLOSED") => Self::Closed { sub_id: str_at(1), message: str_at(2) },
            Some("NOTICE") => Self::Notice(str_at(1)),
            _ => Self::Other,
        })
    }
}

/// Wait up to `wait` for the next relay message, skipping control frames (tungstenite answers
/// pings while we read). A closed connection or silence past `wait` is an error.
pub async fn recv<S>(ws: &mut S, wait: Duration) -> Result<RelayMessage>
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let deadline = Instant::now() + wait;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| anyhow!("the relay sent nothing for {}s; is it overloaded or stuck?", wait.as_secs()))?;
        match frame {
            Some(Ok(Message::Text(text))) => return RelayMessage::parse(text.as_str()),
            Some(Ok(Message::Close(frame))) => match frame {
                Some(f) => bail!("the relay closed the connection: {} {}", f.code, f.reason),
                None => bail!("the relay closed the connection"),
            },
            Some(Ok(_)) => continue,
            Some(Err(e)) => bail!("WebSocket error: {e}"),
            None => bail!("the relay dropped the connection"),
        }
    }
}
