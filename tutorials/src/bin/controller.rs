//! Tutorial: one controller driving several charging stations (see tutorials/controller.md), as
//! DePHY's controller node does: one controller key signs every Status, each naming its machine
//! in `p`. Two stations serve a user each; a third station is added and the first removed while
//! the controller runs (its relay subscription changes on the open connection); a request to the
//! removed station is no longer received, the new station serves its user.
//!
//! With `--serve --machine KEY...` it only runs the controller for those machines (no users)
//! until Ctrl-C or its standard input closes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use dephy_device_sdk::controller::Controller;
use dephy_device_sdk::keys;
use dephy_device_sdk::message::Reason;
use dephy_device_sdk::nostr::{Keys, PublicKey, ToBech32 as _};
use dephy_device_sdk::payment::accounts;
use dephy_device_sdk::payment::eligibility::Requirement;
use dephy_tutorials::dapp::Dapp;
use dephy_tutorials::station::{Actuator, Command, Station, parse_key};
use dephy_tutorials::{chain, short, state_dir};
use solana_commitment_config::CommitmentConfig;
use solana_keypair::Keypair;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_signer::Signer as _;
use tokio::sync::{mpsc, oneshot};

const SESSION: &str = "dephy-decharge-controller";

#[derive(Parser)]
#[command(about = "One DePHY controller key driving several charging stations")]
struct Args {
    /// Relay WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:8000")]
    relay: String,
    /// Solana JSON-RPC URL (the tutorials' offline surfpool node).
    #[arg(long)]
    rpc: String,
    /// Price of a charge in lamports.
    #[arg(long, default_value_t = 1_000_000)]
    price: u64,
    /// The settlement service's key (hex or npub): its LockFailed Request stops a station.
    #[arg(long)]
    settlement: Option<String>,
    /// Only run the controller for the `--machine` keys, without users, until Ctrl-C or EOF on stdin.
    #[arg(long)]
    serve: bool,
    /// A machine to drive in `--serve` mode (hex or npub; repeatable).
    #[arg(long)]
    machine: Vec<String>,
    /// How long a station charges, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    work_ms: u64,
    /// Directory for the controller key, outboxes and resume positions (default target/tutorials/controller).
    #[arg(long)]
    state: Option<PathBuf>,
}

async fn run(args: Args) -> anyhow::Result<()> {
    let state = state_dir(args.state.clone(), "controller");
    let rpc = || RpcClient::new_with_commitment(args.rpc.clone(), CommitmentConfig::confirmed());
    let chain_rpc = chain::connect(&args.rpc).await?;
    let program = accounts::program_id();
    let ns = chain::ensure_namespace(
        &chain_rpc,
        &program,
        chain::DECHARGE,
        &Keypair::new_from_array(rand::random()).pubkey(),
    )
    .await?;
    println!("chain: namespace {} \"{}\" of program {program}, bot {}", ns.id, ns.name, ns.bot);

    let key_file = state.join("controller.key");
    let keys = keys::load_or_create(&key_file)?;
    println!("controller: key {} ({})", keys.public_key().to_bech32()?, key_file.display());
    let machines: Vec<(String, PublicKey)> = if args.serve {
        if args.machine.is_empty() {
            bail!("--serve needs at least one --machine KEY");
        }
        args.machine
            .iter()
            .enumerate()
            .map(|(i, m)| Ok((format!("machine-{}", i + 1), parse_key(m)?)))
            .collect::<anyhow::Result<_>>()?
    } else {
        (1..=3).map(|i| (format!("station-{i}"), Keys::generate().public_key())).collect()
    };
    for (name, key) in &machines {
        println!("controller: {name} is {}", key.to_bech32()?);
    }
    let names: HashMap<PublicKey, String> = machines.iter().map(|(n, k)| (*k, n.clone())).collect();
    let first: Vec<PublicKey> =
        machines.iter().take(if args.serve { machines.len() } else { 2 }).map(|(_, k)| *k).collect();
    let settlement = args.settlement.as_deref().map(parse_key).transpose()?;
    let controller = Controller::for_machines(
        keys.clone(),
        SESSION,
        first,
        vec![],
        Actuator { label: "controller", names: names.clone() },
    )
    .with_settlement(settlement);
    let requirement = Requirement { program, namespace_id: Some(chain::DECHARGE.0), amount: args.price };
    let work = Duration::from_millis(args.work_ms);
    let station = Station::start(controller, keys.clone(), &args.relay, &state, rpc(), requirement, work).await?;
    let (commands, commands_rx) = mpsc::channel(4);
    let mut station_task = tokio::spawn(station.run(commands_rx));

    if args.serve {
        println!("controller: serving {} machines in session {SESSION}", machines.len());
        let stdin_closed = async {
            use tokio::io::AsyncReadExt as _;
            let mut buf = [0u8; 64];
            let mut stdin = tokio::io::stdin();
            while stdin.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {}
        };
        tokio::select! {
            result = &mut station_task => return result.context("the controller task")?,
            _ = tokio::signal::ctrl_c() => {}
            () = stdin_closed => {}
        }
        println!("controller: stopped");
        return Ok(());
    }

    let controller_key = keys.public_key();
    let vault = 10 * args.price;
    let user = |label: &'static str, machine: PublicKey| {
        let relay = args.relay.clone();
        let state = state.clone();
        let rpc = rpc();
        async move { Dapp::start(label, &relay, &state, &rpc, &program, SESSION, machine, controller_key, vault).await }
    };
    let charge = |mut dapp: Dapp| {
        let rpc = rpc();
        async move {
            let (request, payload) = dapp.request(&rpc, &program, chain::DECHARGE).await?;
            let (reason, why) = dapp.follow(&request.id, &payload).await?;
            if reason != Reason::UserBehaviour {
                bail!("{}: the session ended with {reason:?}: {why}", dapp.label);
            }
            anyhow::Ok(dapp)
        }
    };
    let (s1, s2, s3) = (machines[0].1, machines[1].1, machines[2].1);

    // Two stations, a user each, at the same time.
    let (user1, user2) = tokio::try_join!(user("user-1", s1), user("user-2", s2))?;
    let (mut user1, _user2) = tokio::try_join!(charge(user1), charge(user2))?;

    // Add station-3 and remove station-1 while the controller runs.
    let (done, added) = oneshot::channel();
    commands.send(Command::Add { machine: s3, name: "station-3".into(), done }).await?;
    added.await?;
    let (done, removed) = oneshot::channel();
    commands.send(Command::Remove { machine: s1, done }).await?;
    removed.await?;

    // user-1 asks the removed station first, then user-3 the new one: the controller, which
    // receives requests in the relay's order, answers only station-3.
    let (orphan, _) = user1.request(&rpc(), &program, chain::DECHARGE).await?;
    let user3 = user("user-3", s3).await?;
    charge(user3).await?;
    match user1.next_status(&orphan.id, Duration::ZERO).await? {
        None => {
            println!("user-1: no answer from station-1 for {} (the controller no longer drives it)", short(&orphan.id))
        }
        Some(answer) => bail!("the removed station-1 answered: {answer:?}"),
    }
    println!("controller tutorial: done");
    drop(commands);
    station_task.abort();
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(e) = run(Args::parse()).await {
        eprintln!("controller: error: {e:#}");
        std::process::exit(1);
    }
}
