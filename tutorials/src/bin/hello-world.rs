//! Tutorial: hello world (see tutorials/hello-world.md). A device loads (or creates) its key,
//! subscribes to its own session on the relay, publishes a signed Status event, and prints the
//! event when the relay sends it back.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use dephy_device_sdk::message::{Reason, Status};
use dephy_device_sdk::nostr::{Alphabet, EventId, Filter, Kind, SingleLetterTag, ToBech32 as _};
use dephy_device_sdk::{Client, ClientConfig, event, keys};

#[derive(Parser)]
#[command(about = "Publish a DePHY status event and receive it back through the relay")]
struct Args {
    /// Relay WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:8000")]
    relay: String,
    /// The device's key file (hex or nsec; created with a .pub beside it if absent).
    #[arg(long, default_value = "target/tutorials/hello-world/device.key")]
    key: PathBuf,
    /// Directory for the outbox and the resume position.
    #[arg(long, default_value = "target/tutorials/hello-world/state")]
    state: PathBuf,
}

const SESSION: &str = "hello_session";
const TIMEOUT: Duration = Duration::from_secs(30);

async fn run(args: Args) -> anyhow::Result<()> {
    let keys = keys::load_or_create(&args.key)?;
    println!("device key: {} ({})", keys.public_key().to_bech32()?, args.key.display());
    let filter = Filter::new()
        .kind(Kind::from(event::DEPHY_KIND))
        .custom_tag(SingleLetterTag::lowercase(Alphabet::S), SESSION)
        .pubkey(keys.public_key());
    let mut client = Client::start(ClientConfig::new([args.relay.clone()], &args.state).subscribe([filter]))?;
    client.wait_subscribed(TIMEOUT).await.map_err(|e| {
        anyhow::anyhow!("cannot subscribe on {} ({e}); is the relay running? see tutorials/hello-world.md", args.relay)
    })?;
    println!("subscribed on {} to session {SESSION}", args.relay);

    // A random number makes every run's event distinct (same key, content and second = same id).
    let payload = format!(r#"{{"hello":"world","run":{}}}"#, rand::random::<u32>());
    let hello = event::status(&keys, SESSION, Status::Available, Reason::Reset, EventId::all_zeros(), &payload);
    client.publish_and_wait(&hello, TIMEOUT).await?;
    println!("published {} (kind 1573, Status Available)", hello.id);

    loop {
        let Some(received) = client.recv_timeout(TIMEOUT).await else {
            anyhow::bail!("the relay did not send the event back within {TIMEOUT:?}");
        };
        if received.event.id == hello.id {
            let seq = received.seq.map(|s| format!(", arrival seq {s}")).unwrap_or_default();
            println!("received {} from {}{seq}", received.event.id, received.relay);
            println!("content: {}", received.event.content);
            break;
        }
    }
    client.commit()?;
    println!("hello world: OK");
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(e) = run(Args::parse()).await {
        eprintln!("hello-world: error: {e:#}");
        std::process::exit(1);
    }
}
