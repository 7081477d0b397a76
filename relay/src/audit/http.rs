//! A minimal HTTP/1.1 client for the relay's JSON API: one `GET` per TCP connection
//! (`Connection: close`), with `Content-Length`, chunked or read-until-close bodies.
//!
//! TLS is deliberately out of scope: the auditor talks to plain `ws://` / `http://` endpoints
//! ([`Endpoint::parse`] says so when given `wss://` or `https://`).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest a request may take, from connecting to the end of the body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response (head and body) the client accepts.
const MAX_RESPONSE: u64 = 16 << 20;

/// Where the relay listens: host, port and the base path its WebSocket is served at.
#[derive(Debug)]
pub struct Endpoint {
    /// The host as written in the URL (IPv6 addresses keep their brackets).
    host: String,
    port: u16,
    /// The URL's path without a trailing slash; empty for the root.
    base_path: String,
}

impl Endpoint {
    /// Parses `ws://HOST[:PORT][/PATH]` or `http://HOST[:PORT][/PATH]` (port 80 by default).
    /// The error says what to fix.
    pub fn parse(url: &str) -> Result<Self, String> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!("relay URL {url:?} must start with ws:// or http://"));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "ws" | "http" => {}
            "wss" | "https" => {
                return Err(format!(
                    "relay URL {url:?} uses TLS, which this auditor does not support; \
                     audit the relay through a plain ws:// or http:// endpoint (for example on \
                     the relay's host, behind its TLS proxy)"
                ));
            }
            _ => return Err(format!("relay URL {url:?} must start with ws:// or http://")),
        }
        if rest.contains(['?', '#']) {
            return Err(format!("relay URL {url:?} must not have a query or fragment"));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.contains('@') {
            return Err(format!("relay URL {url:?} must not contain credentials"));
        }
        // "[::1]:8000" has a port, "[::1]" has none.
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| format!("relay URL {url:?}: the port must be a number from 1 to 65535"))?;
                (host, port)
            }
            _ => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("relay URL {url:?} has no host"));
        }
        Ok(Self { host: host.to_string(), port, base_path: path.trim_end_matches('/').to_string() })
    }

    /// The WebSocket URL of the relay.
    pub fn ws_url(&self) -> String {
        format!("ws://{}:{}{}/", self.host, self.port, self.base_path)
    }

    /// The full `http://` URL of `path` (which starts with `/`), for messages.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}:{}{}{path}", self.host, self.port, self.base_path)
    }

    /// The host to connect to: without the brackets of an IPv6 address.
    fn connect_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// A response: its status code and decoded body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// `GET path` (relative to the endpoint's base path) with the given `Accept` header.
pub async fn get(endpoint: &Endpoint, path: &str, accept: &str) -> io::Result<Response> {
    tokio::time::timeout(REQUEST_TIMEOUT, request(endpoint, path, accept)).await.map_err(|_| {
        io::Error::new(io::ErrorKind::TimedOut, format!("no complete response within {REQUEST_TIMEOUT:?}"))
    })?
}

async fn request(endpoint: &Endpoint, path: &str, accept: &str) -> io::Result<Response> {
    let mut stream = TcpStream::connect((endpoint.connect_host(), endpoint.port)).await?;
    let head = format!(
        "GET {}{path} HTTP/1.1\r\nHost: {}:{}\r\nAccept: {accept}\r\nConnection: close\r\nUser-Agent: dephy-relay-audit\r\n\r\n",
        endpoint.base_path, endpoint.host, endpoint.port
    );
    stream.write_all(head.as_bytes()).await?;
    let mut reader = BufReader::new(stream.take(MAX_RESPONSE));

    let status_line = read_line(&mut reader).await?;
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| invalid(format!("not an HTTP/1.x status line: {status_line:?}")))?;

    let mut content_length = None;
    let mut chunked = false;
    loop {
        let line = read_line(&mut reader).await?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| invalid(format!("malformed header line {line:?}")))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let length = value.parse::<u64>().map_err(|_| invalid(format!("bad Content-Length {value:?}")))?;
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }

    let body = if chunked {
        read_chunked(&mut reader).await?
    } else if let Some(length) = content_length {
        if length > MAX_RESPONSE {
            return Err(invalid(format!("response body of {length} bytes is larger than {MAX_RESPONSE}")));
        }
        let mut body = vec![0; length as usize];
        reader.read_exact(&mut body).await?;
        body
    } else {
        let mut body = Vec::new();
        reader.read_to_end(&mut body).await?;
        body
    };
    Ok(Response { status, body })
}

/// Reads a chunked body (RFC 9112 §7.1), discarding trailers.
async fn read_chunked(reader: &mut (impl AsyncBufRead + Unpin)) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader).await?;
        let digits = line.split_once(';').map_or(line.as_str(), |(size, _)| size).trim();
        let size = u64::from_str_radix(digits, 16).map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            while !read_line(reader).await?.is_empty() {}
            return Ok(body);
        }
        let start = body.len();
        let end = (start as u64)
            .checked_add(size)
            .filter(|&end| end <= MAX_RESPONSE)
            .ok_or_else(|| invalid(format!("chunked body is larger than {MAX_RESPONSE} bytes")))?;
        body.resize(end as usize, 0);
        reader.read_exact(&mut body[start..]).await?;
        if !read_line(reader).await?.is_empty() {
            return Err(invalid("chunk data is not followed by CRLF".to_string()));
        }
    }
}

/// One line of the response head, without its line ending.
async fn read_line(reader: &mut (impl AsyncBufRead + Unpin)) -> io::Result<String> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line).await? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-response"));
    }
    while line.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| invalid("response head is not UTF-8".to_string()))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_urls() {
        let e = Endpoint::parse("ws://127.0.0.1:8000").unwrap();
        assert_eq!(e.ws_url(), "ws://127.0.0.1:8000/");
        assert_eq!(e.http_url("/log/checkpoint"), "http://127.0.0.1:8000/log/checkpoint");
        let e = Endpoint::parse("http://relay.example/nostr/").unwrap();
        assert_eq!(e.ws_url(), "ws://relay.example:80/nostr/");
        assert_eq!(e.http_url("/"), "http://relay.example:80/nostr/");
        let e = Endpoint::parse("ws://[::1]:9000/").unwrap();
        assert_eq!(e.connect_host(), "::1");
        assert_eq!(e.port, 9000);
        assert_eq!(Endpoint::parse("ws://[::1]").unwrap().port, 80);
    }

    #[test]
    fn rejects_tls_and_malformed_urls() {
        assert!(Endpoint::parse("wss://relay.example").unwrap_err().contains("TLS"));
        assert!(Endpoint::parse("https://relay.example").unwrap_err().contains("TLS"));
        assert!(Endpoint::parse("relay.example:8000").unwrap_err().contains("ws://"));
        assert!(Endpoint::parse("ftp://relay.example").unwrap_err().contains("ws://"));
        assert!(Endpoint::parse("ws://relay.example:0").unwrap_err().contains("port"));
        assert!(Endpoint::parse("ws://relay.example:x").unwrap_err().contains("port"));
        assert!(Endpoint::parse("ws://:8000").unwrap_err().contains("host"));
        assert!(Endpoint::parse("ws://u:p@relay.example").unwrap_err().contains("credentials"));
        assert!(Endpoint::parse("ws://relay.example/?a=1").unwrap_err().contains("query"));
    }

    #[tokio::test]
    async fn reads_chunked_bodies() {
        let data: &[u8] = b"4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\nTrailer: x\r\n\r\n";
        let mut reader = BufReader::new(data);
        assert_eq!(read_chunked(&mut reader).await.unwrap(), b"Wikipedia ");
        let mut reader = BufReader::new(&b"4\r\nWikiXX"[..]);
        assert!(read_chunked(&mut reader).await.is_err());
    }
}
