//! Shared pieces of the tutorial binaries: command-line options, and the two roles of a paid
//! DePHY machine (used by `decharge` and `gacha`): the machine's controller and the user's dApp,
//! each with its own relay client, talking only through the relay.
//!
//! The user's request carries a DePHY payment authorization (signed with the user's Solana
//! wallet), and the user pays the machine's owner a SOL transfer whose memo is the request id.
//! The machine checks both (signature, deadline, nonce; confirmed transfer of the price to the
//! owner with that memo, never used before) before it goes Working. A refused request is
//! answered with Status Available, reason `LockFailed`, and the reason in the payload.

use std::path::PathBuf;
use std::str::FromStr as _;
use std::time::Duration;

use anyhow::{Context as _, bail};
use dephy_device_sdk::controller::{Controller, Decision, Hooks};
use dephy_device_sdk::event::{self, ParsedEvent};
use dephy_device_sdk::message::{Message, Payload, Reason, Status};
use dephy_device_sdk::nostr::{Alphabet, EventId, Filter, Keys, Kind, SingleLetterTag, Timestamp};
use dephy_device_sdk::payment::authorization::{self, NonceRegistry};
use dephy_device_sdk::payment::transfer::{self, PaymentLedger};
use dephy_device_sdk::{Client, ClientConfig, keys};
use ed25519_dalek::SigningKey;
use solana_commitment_config::CommitmentConfig;
use solana_keypair::Keypair;
use solana_pubkey::Pubkey;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_signer::Signer as _;

/// How long the user waits for each answer from the machine.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Options of the paid-machine tutorials.
#[derive(Debug, Clone, clap::Parser)]
pub struct PaidArgs {
    /// Relay WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:8000")]
    pub relay: String,
    /// Solana JSON-RPC URL (e.g. the offline surfpool node of the tutorial).
    #[arg(long)]
    pub rpc: String,
    /// Price in lamports.
    #[arg(long, default_value_t = 1_000_000)]
    pub price: u64,
    /// Directory for keys, outboxes and resume positions.
    #[arg(long)]
    pub state: Option<PathBuf>,
}

/// What distinguishes the two paid machines.
pub struct Machine {
    /// The `s` tag.
    pub session: &'static str,
    /// The payment namespace (name and id) the authorization is for, as DePHY's balance-payment
    /// program numbers them: 0 = `"DeCharge"`, 1 = `"Gacha"` (the name is case-sensitive and is
    /// part of the signed digest).
    pub namespace: &'static str,
    pub namespace_id: u64,
    /// How long the machine stays Working before it finishes by itself.
    pub work: Duration,
    /// The payload of the Working status, from the request id (e.g. the prize).
    pub working_payload: fn(&EventId) -> String,
    /// The payload of the final Available status.
    pub done_payload: fn(&EventId) -> String,
}

fn session_filter(session: &str) -> Filter {
    Filter::new().kind(Kind::from(event::DEPHY_KIND)).custom_tag(SingleLetterTag::lowercase(Alphabet::S), session)
}

/// The machine's checks, done before the controller sees the request.
struct Checks {
    decision: Option<Decision>,
    log: Vec<String>,
}

impl Hooks for Checks {
    async fn eligible(&mut self, _: &ParsedEvent, _: &str) -> Decision {
        self.decision.take().unwrap_or(Decision::Refuse("not checked".into()))
    }
    fn actuate(&mut self, _: &dephy_device_sdk::nostr::PublicKey, status: Status, initial_request: EventId) {
        self.log.push(format!("machine: actuator -> {status:?} (request {})", short(&initial_request)));
    }
}

pub fn short(id: &EventId) -> String {
    id.to_hex()[..12].to_string()
}

fn now() -> i64 {
    Timestamp::now().as_secs() as i64
}

/// Runs one machine and one user session against it; prints what happens. `requests` user
/// requests are made: the first pays; the later ones replay the first payment, which the
/// machine refuses.
pub async fn run_paid(machine_def: Machine, args: PaidArgs, replay: bool) -> anyhow::Result<()> {
    let state = args.state.clone().unwrap_or_else(|| PathBuf::from("data").join(machine_def.session));
    let rpc = RpcClient::new_with_commitment(args.rpc.clone(), CommitmentConfig::confirmed());
    rpc.get_latest_blockhash().await.with_context(|| {
        format!("cannot reach the Solana RPC at {} (is surfpool running? see the tutorial)", args.rpc)
    })?;

    // --- The machine -----------------------------------------------------------------------
    let machine_keys = keys::load_or_create(&state.join("machine.key"))?;
    let owner = Keypair::new_from_array(rand::random());
    println!(
        "machine: {} (session {}), owner wallet {}",
        machine_keys.public_key(),
        machine_def.session,
        owner.pubkey()
    );
    let mut machine_config = ClientConfig::new([args.relay.clone()], state.join("machine"));
    let controller_probe =
        Controller::new(machine_keys.clone(), machine_def.session, vec![], Checks { decision: None, log: vec![] });
    machine_config =
        machine_config.subscribe(controller_probe.requests_filters(Timestamp::from(Timestamp::now().as_secs() - 5)));
    let mut machine_client = Client::start(machine_config)?;
    machine_client.wait_subscribed(ANSWER_TIMEOUT).await.context("the machine could not subscribe to the relay")?;
    let mut controller = controller_probe;
    let me = machine_keys.public_key();
    let last = machine_client.query(controller.recovery_filters(), ANSWER_TIMEOUT).await?;
    if !controller.recover(&last).is_empty() {
        println!("machine: recovered state {:?} from the relay", controller.status(&me).expect("driven"));
    }
    if controller.status(&me) == Some(Status::Working) {
        let done = controller.finish(&me).expect("working");
        machine_client.publish_and_wait(&done, ANSWER_TIMEOUT).await?;
    }
    let available =
        event::status(&machine_keys, machine_def.session, Status::Available, Reason::Reset, EventId::all_zeros(), "");
    machine_client.publish_and_wait(&available, ANSWER_TIMEOUT).await?;
    println!("machine: Available");

    let machine_pub = machine_keys.public_key();
    let price = args.price;
    let owner_pub = owner.pubkey();
    let machine_task = {
        let rpc = RpcClient::new_with_commitment(args.rpc.clone(), CommitmentConfig::confirmed());
        let state = state.clone();
        tokio::spawn(async move {
            let result: anyhow::Result<()> = async {
                let mut nonces = NonceRegistry::open(&state.join("nonces"))?;
                let mut ledger = PaymentLedger::open(&state.join("payments"))?;
                loop {
                    let Some(received) = machine_client.recv().await else { bail!("the machine's client stopped") };
                    let Ok(request) = event::parse_in_session(&received.event, machine_def.session) else { continue };
                    let Message::Request { to_status: Status::Working, payload, .. } = &request.message else {
                        continue;
                    };
                    println!("machine: request {} from {}", short(&request.id), request.author);
                    // 1. The off-chain authorization (signature, deadline, nonce).
                    let mut decision = match Payload::parse(payload) {
                        Err(e) => Decision::Refuse(e.to_string()),
                        Ok(p) => match nonces.accept(&p, machine_def.namespace_id, machine_def.namespace, now()) {
                            Err(e) => Decision::Refuse(e.to_string()),
                            Ok(auth) => {
                                println!(
                                    "machine: authorization ok (namespace {} \"{}\", user {}, nonce {})",
                                    machine_def.namespace_id, machine_def.namespace, auth.user, auth.nonce
                                );
                                Decision::Accept
                            }
                        },
                    };
                    // 2. The SOL transfer to the owner whose memo is this request's id.
                    if matches!(decision, Decision::Accept) {
                        decision = match transfer::find(&rpc, &owner_pub, &request.id).await {
                            Ok(Some(sig)) => match ledger.accept(&rpc, &sig, &owner_pub, price, &request.id).await {
                                Ok(paid) => {
                                    println!(
                                        "machine: payment ok ({} lamports, transaction {}...)",
                                        paid.lamports,
                                        &sig[..16]
                                    );
                                    Decision::Accept
                                }
                                Err(e) => Decision::Refuse(e.to_string()),
                            },
                            Ok(None) => Decision::Refuse(format!(
                                "no confirmed payment to {owner_pub} with memo {}",
                                request.id
                            )),
                            Err(e) => Decision::Refuse(e.to_string()),
                        };
                    }
                    controller.hooks.decision = Some(decision);
                    match controller.handle(&request).await {
                        Ok(working) => {
                            // Print before publishing: the user reacts to the published event.
                            for line in controller.hooks.log.drain(..) {
                                println!("{line}");
                            }
                            println!("machine: Working for {}", short(&request.id));
                            machine_client.publish_and_wait(&working, ANSWER_TIMEOUT).await?;
                            tokio::time::sleep(machine_def.work).await;
                            let done = controller.finish(&machine_pub).expect("working");
                            for line in controller.hooks.log.drain(..) {
                                println!("{line}");
                            }
                            println!("machine: finished, Available");
                            machine_client.publish_and_wait(&done, ANSWER_TIMEOUT).await?;
                        }
                        Err(e) => {
                            println!("machine: refused {}: {e}", short(&request.id));
                            let refusal = event::status(
                                &machine_keys,
                                machine_def.session,
                                Status::Available,
                                Reason::LockFailed,
                                request.id,
                                &e.to_string(),
                            );
                            machine_client.publish_and_wait(&refusal, ANSWER_TIMEOUT).await?;
                        }
                    }
                }
            }
            .await;
            if let Err(e) = &result {
                eprintln!("machine: error: {e:#}");
            }
        })
    };

    // --- The user ----------------------------------------------------------------------------
    let result = user(&machine_def, &args, &rpc, &state, &machine_pub, &owner_pub, replay).await;
    machine_task.abort();
    result
}

async fn user(
    machine_def: &Machine,
    args: &PaidArgs,
    rpc: &RpcClient,
    state: &std::path::Path,
    machine: &dephy_device_sdk::nostr::PublicKey,
    owner: &Pubkey,
    replay: bool,
) -> anyhow::Result<()> {
    let wallet = Keypair::new_from_array(rand::random());
    rpc.request_airdrop(&wallet.pubkey(), 2_000_000_000).await.context("requestAirdrop")?;
    let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
    while rpc.get_balance(&wallet.pubkey()).await.unwrap_or(0) == 0 {
        if tokio::time::Instant::now() > deadline {
            bail!("the airdrop to {} did not arrive", wallet.pubkey());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("user: wallet {} funded with 2 SOL (airdrop)", wallet.pubkey());
    let user_keys = Keys::generate();
    // Subscribe first (to the machine's status events), then publish.
    let filter = session_filter(machine_def.session).pubkey(*machine).author(*machine).since(Timestamp::now());
    let mut client = Client::start(
        ClientConfig::new([args.relay.clone()], state.join(format!("user-{}", &user_keys.public_key().to_hex()[..8])))
            .subscribe([filter]),
    )?;
    client.wait_subscribed(ANSWER_TIMEOUT).await.context("the user could not subscribe to the relay")?;

    let signing = SigningKey::from_bytes(wallet.secret_bytes());
    let nonce = rand::random::<u32>() as u64;
    let payload = authorization::signed_payload(
        &signing,
        machine_def.namespace,
        machine_def.namespace_id,
        nonce,
        now() + 600,
        [0; 64],
    );
    let request = event::request(
        &user_keys,
        machine_def.session,
        machine,
        Status::Working,
        Reason::UserRequest,
        None,
        &payload.to_json(),
    );
    let signature = transfer::pay(rpc, &wallet, owner, args.price, &request.id).await.context("the payment failed")?;
    println!(
        "user: paid {} lamports to {owner} with memo {} (transaction {}...)",
        args.price,
        short(&request.id),
        &signature.to_string()[..16]
    );
    client.publish_and_wait(&request, ANSWER_TIMEOUT).await?;
    println!("user: sent request {}", short(&request.id));

    loop {
        let Some(status) = wait_status(&mut client, machine_def.session, &request.id).await? else {
            bail!("no answer from the machine")
        };
        match status {
            (Status::Working, _, payload) => println!(
                "user: machine is Working{}",
                if payload.is_empty() { String::new() } else { format!(": {payload}") }
            ),
            (Status::Available, Reason::LockFailed, payload) => bail!("the machine refused the request: {payload}"),
            (Status::Available, _, payload) => {
                println!(
                    "user: machine is Available again{}",
                    if payload.is_empty() { String::new() } else { format!(": {payload}") }
                );
                break;
            }
        }
    }

    if replay {
        // A second request that reuses the first payment and the first authorization.
        // (A fresh throwaway key: the same key, content and second would give the same event id.)
        let again = event::request(
            &Keys::generate(),
            machine_def.session,
            machine,
            Status::Working,
            Reason::UserRequest,
            None,
            &payload.to_json(),
        );
        client.publish_and_wait(&again, ANSWER_TIMEOUT).await?;
        println!("user: sent request {} reusing the first payment and nonce", short(&again.id));
        match wait_status(&mut client, machine_def.session, &again.id).await? {
            Some((Status::Available, Reason::LockFailed, why)) => println!("user: refused as expected: {why}"),
            other => bail!("the replayed request was not refused: {other:?}"),
        }
    }
    println!("user: done");
    Ok(())
}

/// The next Status of the machine answering `request`.
async fn wait_status(
    client: &mut Client,
    session: &str,
    request: &EventId,
) -> anyhow::Result<Option<(Status, Reason, String)>> {
    let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(received) = client.recv_timeout(left).await else { return Ok(None) };
        let Ok(parsed) = event::parse_in_session(&received.event, session) else { continue };
        if let Message::Status { status, reason, initial_request, payload } = parsed.message
            && initial_request == *request
        {
            return Ok(Some((status, reason, payload)));
        }
    }
}

/// Parses a Solana address.
pub fn pubkey(text: &str) -> anyhow::Result<Pubkey> {
    Pubkey::from_str(text).with_context(|| format!("{text:?} is not a base58 Solana address"))
}
