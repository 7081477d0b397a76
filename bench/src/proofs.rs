//! Verifiable-log proof latency: `GET /log/proof/inclusion` and `GET /log/proof/consistency`
//! over one keep-alive HTTP/1.1 connection, for random leaves and tree sizes of the relay's
//! current log (populate it first). Timed from request written to body read.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args as ClapArgs;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::stats::Percentiles;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Proof requests of each kind.
    #[arg(long, default_value_t = 2000, value_parser = crate::at_least_one)]
    requests: usize,
}

/// One keep-alive HTTP/1.1 connection.
struct Http {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Http {
    async fn connect(host: &str) -> Result<Self> {
        let tcp = TcpStream::connect(host).await.with_context(|| format!("cannot connect to {host}"))?;
        tcp.set_nodelay(true)?;
        Ok(Self { stream: BufReader::new(tcp), host: host.to_string() })
    }

    async fn get(&mut self, path: &str) -> Result<(u16, Value)> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive\r\n\r\n", self.host);
        self.stream.get_mut().write_all(req.as_bytes()).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 =
            line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("bad HTTP status line")?;
        let mut length = None;
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                bail!("connection closed in the middle of a response");
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse::<usize>().ok();
            }
        }
        let mut body = vec![0; length.context("response without Content-Length")?];
        self.stream.read_exact(&mut body).await?;
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }
}

/// A small deterministic generator, so runs are repeatable.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

pub async fn run(url: &str, args: Args) -> Result<()> {
    let host = url.trim_start_matches("ws://").trim_end_matches('/').to_string();
    let mut http = Http::connect(&host).await?;
    let (status, entries) = http.get("/log/entries?start=0&end=1").await?;
    if status != 200 {
        bail!("{url} has an empty log or no /log API (status {status}): populate it first");
    }
    let size = entries["tree_size"].as_u64().context("no tree_size")?;
    println!("proofs: {} inclusion + {} consistency requests on a log of {size} leaves", args.requests, args.requests);
    let mut rng = Lcg(0x5eed);

    // Event ids of random leaves (not timed).
    let mut ids = Vec::with_capacity(args.requests);
    for _ in 0..args.requests {
        let i = rng.below(size);
        let (_, body) = http.get(&format!("/log/entries?start={i}&end={}", i + 1)).await?;
        ids.push(body["entries"][0]["event_id"].as_str().context("entry without event_id")?.to_string());
    }
    let mut inclusion = Vec::with_capacity(args.requests);
    for id in &ids {
        let started = Instant::now();
        let (status, body) = http.get(&format!("/log/proof/inclusion?id={id}&tree_size={size}")).await?;
        inclusion.push(started.elapsed());
        if status != 200 {
            bail!("inclusion proof for {id} failed with {status}: {body}");
        }
    }
    let mut consistency = Vec::with_capacity(args.requests);
    for _ in 0..args.requests {
        let second = 2 + rng.below(size - 1);
        let first = 1 + rng.below(second - 1);
        let started = Instant::now();
        let (status, body) = http.get(&format!("/log/proof/consistency?first={first}&second={second}")).await?;
        consistency.push(started.elapsed());
        if status != 200 {
            bail!("consistency proof {first}..{second} failed with {status}: {body}");
        }
    }
    let (inc, con) = (Percentiles::of(inclusion), Percentiles::of(consistency));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (name, p) in [("inclusion", inc), ("consistency", con)] {
        println!(
            "{name:<12} p50={:.3}ms p90={:.3}ms p99={:.3}ms max={:.3}ms",
            ms(p.p50),
            ms(p.p90),
            ms(p.p99),
            ms(p.max)
        );
    }
    crate::summary::print(
        "proofs",
        json!({
            "tree_size": size,
            "requests": args.requests,
            "inclusion": {"p50_ms": ms(inc.p50), "p99_ms": ms(inc.p99), "max_ms": ms(inc.max)},
            "consistency": {"p50_ms": ms(con.p50), "p99_ms": ms(con.p99), "max_ms": ms(con.max)},
        }),
    );
    Ok(())
}
