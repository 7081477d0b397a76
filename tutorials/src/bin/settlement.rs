//! Tutorial: a settlement service like DePHY's (see tutorials/settlement.md). It makes itself the
//! `bot` of DePHY's namespaces on the local node, watches the Status events of a session, and
//! locks / settles / pays on DePHY's balance-payment program (`dephy_tutorials::settlement`);
//! a refused lock is answered with a LockFailed Request to the machine. Runs until Ctrl-C.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use dephy_device_sdk::nostr::{PublicKey, Timestamp, ToBech32 as _};
use dephy_device_sdk::payment::accounts;
use dephy_device_sdk::{Client, ClientConfig, event, keys};
use dephy_tutorials::settlement::{Outcome, RpcChain, Settlement};
use dephy_tutorials::{chain, short};
use solana_keypair::Keypair;
use solana_signer::Signer as _;

#[derive(Parser)]
#[command(about = "Lock, settle and pay on DePHY's balance-payment program from a session's Status events")]
struct Args {
    /// Relay WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:8000")]
    relay: String,
    /// Solana JSON-RPC URL (the tutorials' surfpool node).
    #[arg(long)]
    rpc: String,
    /// The session (`s` tag) to watch.
    #[arg(long, default_value = "dephy-decharge-controller")]
    session: String,
    /// Lamports locked per charging session (at most this is settled), or paid per Gacha play.
    #[arg(long, default_value_t = 1_000_000)]
    amount: u64,
    /// Act only on Status events signed by this controller key (hex or npub; repeatable).
    #[arg(long)]
    controller: Vec<String>,
    /// Directory for the settlement key and the client's state (default target/tutorials/settlement).
    #[arg(long)]
    state: Option<PathBuf>,
}

const TIMEOUT: Duration = Duration::from_secs(30);

async fn run(args: Args) -> anyhow::Result<()> {
    let state = args.state.clone().unwrap_or_else(|| PathBuf::from("target/tutorials/settlement"));
    let key_file = state.join("settlement.key");
    let keys = keys::load_or_create(&key_file)?;
    println!("settlement: key {} ({})", keys.public_key().to_bech32()?, key_file.display());
    let controllers = args
        .controller
        .iter()
        .map(|c| PublicKey::parse(c).with_context(|| format!("--controller {c:?} is not a hex or npub key")))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let rpc = chain::connect(&args.rpc).await?;
    let program = accounts::program_id();
    let bot = Keypair::new_from_array(rand::random());
    let payer = Keypair::new_from_array(rand::random());
    chain::airdrop(&rpc, &payer.pubkey(), 1_000_000_000).await?;
    chain::airdrop(&rpc, &bot.pubkey(), 1_000_000_000).await?;
    println!("settlement: bot {}, fee payer {} (airdrop)", bot.pubkey(), payer.pubkey());
    for ns in [chain::DECHARGE, chain::GACHA] {
        let treasury = match chain::namespace(&rpc, &program, ns.0).await? {
            Some(existing) => existing.treasury,
            None => Keypair::new_from_array(rand::random()).pubkey(),
        };
        chain::seed_namespace(&rpc, &program, ns, &bot.pubkey(), &treasury).await?;
        println!("settlement: namespace {} \"{}\": bot set to {} (treasury {treasury})", ns.0, ns.1, bot.pubkey());
    }
    if rpc.get_account_with_commitment(&program, rpc.commitment()).await?.value.is_none() {
        println!("settlement: program {program} is not deployed on this node: its transactions will be refused");
    }

    let filter = dephy_device_sdk::filters::session(&args.session).since(Timestamp::now());
    let mut client = Client::start(ClientConfig::new([args.relay.clone()], state.join("client")).subscribe([filter]))?;
    client.wait_subscribed(TIMEOUT).await.map_err(|e| {
        anyhow::anyhow!("cannot subscribe on {} ({e}); is the relay running? see tutorials/settlement.md", args.relay)
    })?;
    println!("settlement: watching Status events of session {} on {}", args.session, args.relay);

    let service = Settlement {
        chain: RpcChain { rpc, program, bot, payer },
        keys,
        session: args.session.clone(),
        amount: args.amount,
        controllers,
    };
    loop {
        let received = tokio::select! {
            r = client.recv() => r.context("the relay client stopped")?,
            _ = tokio::signal::ctrl_c() => {
                println!("settlement: stopped");
                return Ok(());
            }
        };
        // Name the session by its Request (the Status's initial_request).
        let id = match event::parse(&received.event).map(|p| p.message) {
            Ok(dephy_device_sdk::message::Message::Status { initial_request, .. }) => {
                format!("request {}", short(&initial_request))
            }
            _ => continue,
        };
        match service.on_event(&received.event).await {
            Outcome::Ignored(_) => {}
            Outcome::Locked { signature, user, nonce, amount } => {
                println!(
                    "settlement: {id}: locked {amount} lamports of user {user} at nonce {nonce} (transaction {signature})"
                )
            }
            Outcome::Paid { signature, user, nonce, amount } => {
                println!(
                    "settlement: {id}: paid {amount} lamports from user {user} at nonce {nonce} (transaction {signature})"
                )
            }
            Outcome::Settled { signature, user, nonce, amount } => {
                println!(
                    "settlement: {id}: settled {amount} lamports of user {user} at nonce {nonce} (transaction {signature})"
                )
            }
            Outcome::SettleFailed { error } => println!("settlement: {id}: settle refused: {error}"),
            Outcome::LockFailed { error, request } => {
                println!("settlement: {id}: {error}");
                client.publish_and_wait(&request, TIMEOUT).await?;
                let parsed = event::parse(&request)?;
                println!(
                    "settlement: sent Request Available/LockFailed {} to machine {}",
                    &request.id.to_hex()[..12],
                    parsed.machine.to_bech32()?
                );
            }
        }
        client.commit()?;
    }
}

#[tokio::main]
async fn main() {
    if let Err(e) = run(Args::parse()).await {
        eprintln!("settlement: error: {e:#}");
        std::process::exit(1);
    }
}
