//! The DeCharge and Gacha tutorials: one machine (a single device signing its own Status) and
//! one user in one process, talking only through the relay, paying through DePHY's
//! balance-payment accounts on the local surfpool node.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use dephy_device_sdk::controller::Controller;
use dephy_device_sdk::keys;
use dephy_device_sdk::message::Reason;
use dephy_device_sdk::nostr::ToBech32 as _;
use dephy_device_sdk::payment::accounts;
use dephy_device_sdk::payment::eligibility::Requirement;
use solana_commitment_config::CommitmentConfig;
use solana_keypair::Keypair;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_signer::Signer as _;
use tokio::sync::mpsc;

use crate::dapp::Dapp;
use crate::station::{Actuator, Station, parse_key};
use crate::{chain, state_dir};

/// Options of the paid-machine tutorials.
#[derive(Debug, Clone, clap::Parser)]
pub struct PaidArgs {
    /// Relay WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:8000")]
    pub relay: String,
    /// Solana JSON-RPC URL (the tutorials' offline surfpool node).
    #[arg(long)]
    pub rpc: String,
    /// Price in lamports (must be available in the user's vault; the settlement service locks
    /// or pays it).
    #[arg(long, default_value_t = 1_000_000)]
    pub price: u64,
    /// The settlement service's key (hex or npub): its LockFailed Request stops the machine.
    #[arg(long)]
    pub settlement: Option<String>,
    /// How long the machine works before it finishes by itself, in milliseconds (default: the
    /// machine's own, 2000 for the charging station, 300 for the Gacha machine).
    #[arg(long)]
    pub work_ms: Option<u64>,
    /// Directory for keys, outboxes and resume positions (default target/tutorials/<name>).
    #[arg(long)]
    pub state: Option<PathBuf>,
}

/// What distinguishes the two paid machines.
pub struct Machine {
    /// For the state directory and the output.
    pub name: &'static str,
    /// The `s` tag.
    pub session: &'static str,
    /// DePHY's payment namespace (id, name).
    pub namespace: (u64, &'static str),
    /// How long the machine stays Working before it finishes by itself.
    pub work: Duration,
}

/// Runs the machine and one user; with `replay`, the user then sends a second Request with the
/// same authorization, which the machine refuses.
pub async fn run_paid(def: Machine, args: PaidArgs, replay: bool) -> anyhow::Result<()> {
    let state = state_dir(args.state.clone(), def.name);
    let rpc = || RpcClient::new_with_commitment(args.rpc.clone(), CommitmentConfig::confirmed());
    let chain_rpc = chain::connect(&args.rpc).await?;
    let program = accounts::program_id();
    let ns =
        chain::ensure_namespace(&chain_rpc, &program, def.namespace, &Keypair::new_from_array(rand::random()).pubkey())
            .await?;
    println!("chain: namespace {} \"{}\" of program {program}, bot {}", ns.id, ns.name, ns.bot);

    // --- The machine -----------------------------------------------------------------------
    let key_file = state.join("machine.key");
    let machine_keys = keys::load_or_create(&key_file)?;
    let machine = machine_keys.public_key();
    println!("machine: {} ({}), session {}", machine.to_bech32()?, key_file.display(), def.session);
    let settlement = args.settlement.as_deref().map(parse_key).transpose()?;
    let names = HashMap::from([(machine, def.name.to_string())]);
    let controller = Controller::new(machine_keys.clone(), def.session, vec![], Actuator { label: "machine", names })
        .with_settlement(settlement);
    let requirement = Requirement { program, namespace_id: Some(def.namespace.0), amount: args.price };
    let work = args.work_ms.map_or(def.work, Duration::from_millis);
    let station = Station::start(controller, machine_keys, &args.relay, &state, rpc(), requirement, work).await?;
    let (commands, commands_rx) = mpsc::channel(1);
    let machine_task = tokio::spawn(async move {
        if let Err(e) = station.run(commands_rx).await {
            eprintln!("machine: error: {e:#}");
        }
    });

    // --- The user ----------------------------------------------------------------------------
    let result = async {
        let mut user = Dapp::start(
            "user",
            &args.relay,
            &state,
            &chain_rpc,
            &program,
            def.session,
            machine,
            machine,
            10 * args.price,
        )
        .await?;
        let (request, payload) = user.request(&chain_rpc, &program, def.namespace).await?;
        let (reason, why) = user.follow(&request.id, &payload).await?;
        if reason == Reason::UserRequest {
            bail!("the machine refused the request: {why}");
        }
        if replay {
            println!("user: replaying the same authorization (same nonce) in a new request");
            let again = user.send(&payload).await?;
            match user.follow(&again.id, &payload).await? {
                (Reason::UserRequest, _) => println!("user: refused as expected"),
                other => bail!("the replayed request was not refused: {other:?}"),
            }
        }
        println!("user: done");
        Ok(())
    }
    .await;
    drop(commands);
    machine_task.abort();
    result
}
