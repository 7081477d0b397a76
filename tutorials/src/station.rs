//! The machine side of the paid tutorials: one controller key driving one machine (a single
//! device signs its own Status) or several (controller mode: Status signed by the controller,
//! `p` = the machine), on one relay client.
//!
//! For each start Request the on-chain eligibility check of the SDK
//! (`payment::eligibility::check`: the user's current on-chain nonce, the namespace's on-chain
//! name in the signed digest, vault balance minus locked amount, deadline, signature) decides;
//! the machine then goes Working with the Request's payload in its Status, works for a while and
//! finishes (Available, `UserBehaviour`, same payload: the settlement service settles from it). A
//! `LockFailed` Request from the settlement key stops it at once. Machines can be added and
//! removed while it runs ([`Command`]): the client's live subscription is replaced on the open
//! connection.
//!
//! A refused start gets `Status Available`, reason `UserRequest`, `initial_request` = the refused
//! Request, payload `{"refused":"<why>"}`: the machine stays Available and the user learns why
//! (DePHY's controller publishes nothing then). A Request refused while the machine is Working
//! (busy, not the session's user, ...) gets no Status: the machine's state has not changed.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use dephy_device_sdk::controller::{Controller, ControllerError, Decision, Hooks, Step};
use dephy_device_sdk::event::{self, ParsedEvent};
use dephy_device_sdk::message::{Message, Payload, Reason, Status};
use dephy_device_sdk::nostr::{EventId, Keys, PublicKey, Timestamp};
use dephy_device_sdk::payment::authorization::NonceRegistry;
use dephy_device_sdk::payment::eligibility::{self, Requirement};
use dephy_device_sdk::{Client, ClientConfig};
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::{ANSWER_TIMEOUT, now, short};

/// Prints the actuator's state changes under the station's label.
pub struct Actuator {
    pub label: &'static str,
    pub names: HashMap<PublicKey, String>,
}

impl Actuator {
    fn name(&self, machine: &PublicKey) -> String {
        self.names.get(machine).cloned().unwrap_or_else(|| machine.to_hex()[..12].to_string())
    }
}

impl Hooks for Actuator {
    /// Not used: the station runs the two-phase check / decide with the on-chain check.
    async fn eligible(&mut self, _: &ParsedEvent, _: &str) -> Decision {
        Decision::Refuse("the station decides with Controller::check / decide".into())
    }

    fn actuate(&mut self, machine: &PublicKey, status: Status, initial_request: EventId) {
        println!("{}: {} actuator -> {status:?} (request {})", self.label, self.name(machine), short(&initial_request));
    }
}

/// Changes to the set of machines while the station runs; the sender is answered once the
/// relay has the new subscription.
pub enum Command {
    Add { machine: PublicKey, name: String, done: oneshot::Sender<()> },
    Remove { machine: PublicKey, done: oneshot::Sender<()> },
}

/// A running controller with its relay client.
pub struct Station {
    pub controller: Controller<Actuator>,
    /// The controller's key (the machine's own in single-device mode).
    keys: Keys,
    client: Client,
    rpc: RpcClient,
    requirement: Requirement,
    work: Duration,
    since: Timestamp,
    /// (user, nonce) pairs accepted: until DePHY's program has taken the payment (its `lock` or
    /// `pay` moves the on-chain nonce on), the chain alone would accept one authorization twice.
    nonces: NonceRegistry,
    /// When each Working machine finishes by itself.
    finishing: HashMap<PublicKey, Instant>,
}

impl Station {
    /// Connects, recovers each machine's state from its newest Status signed by the controller
    /// (a machine found Working is finished: its session cannot go on after a restart), and
    /// announces every machine Available.
    pub async fn start(
        controller: Controller<Actuator>,
        keys: Keys,
        relay: &str,
        state: &Path,
        rpc: RpcClient,
        requirement: Requirement,
        work: Duration,
    ) -> anyhow::Result<Station> {
        let since = Timestamp::from(Timestamp::now().as_secs().saturating_sub(5));
        let config =
            ClientConfig::new([relay.to_string()], state.join("client")).subscribe(controller.requests_filters(since));
        let client = Client::start(config)?;
        client.wait_subscribed(ANSWER_TIMEOUT).await.map_err(|e| {
            anyhow::anyhow!("cannot subscribe on {relay} ({e}); is the relay running? see the tutorial")
        })?;
        let nonces = NonceRegistry::open(&state.join("nonces"))?;
        let mut station =
            Station { controller, keys, client, rpc, requirement, work, since, nonces, finishing: HashMap::new() };
        let label = station.controller.hooks.label;
        let last = station.client.query(station.controller.recovery_filters(), ANSWER_TIMEOUT).await?;
        for machine in station.controller.recover(&last) {
            let status = station.controller.status(&machine).expect("recovered");
            println!("{label}: {} recovered state {status:?} from the relay", station.controller.hooks.name(&machine));
            if status == Status::Working
                && let Some(done) = station.controller.finish(&machine)
            {
                station.client.publish_and_wait(&done, ANSWER_TIMEOUT).await?;
            }
        }
        for machine in station.controller.machines() {
            station.announce(&machine).await?;
        }
        Ok(station)
    }

    async fn announce(&mut self, machine: &PublicKey) -> anyhow::Result<()> {
        let keys = self.controller_keys();
        let available = event::status_for(
            keys,
            self.controller.session(),
            machine,
            Status::Available,
            Reason::Reset,
            EventId::all_zeros(),
            "",
        );
        self.client.publish_and_wait(&available, ANSWER_TIMEOUT).await?;
        println!("{}: {} Available", self.controller.hooks.label, self.controller.hooks.name(machine));
        Ok(())
    }

    fn controller_keys(&self) -> &Keys {
        &self.keys
    }

    /// Handles requests, finishes and commands until the client stops or `commands` closes.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) -> anyhow::Result<()> {
        loop {
            let next_finish = self.finishing.iter().min_by_key(|(_, at)| **at).map(|(m, at)| (*m, *at));
            tokio::select! {
                received = self.client.recv() => {
                    let Some(received) = received else { bail!("the relay client stopped") };
                    self.on_event(&received.event).await?;
                    self.client.commit()?;
                }
                () = async { tokio::time::sleep_until(next_finish.expect("guarded").1).await }, if next_finish.is_some() => {
                    let machine = next_finish.expect("guarded").0;
                    self.finishing.remove(&machine);
                    if let Some(done) = self.controller.finish(&machine) {
                        println!("{}: {} finished, Available", self.controller.hooks.label, self.controller.hooks.name(&machine));
                        self.client.publish_and_wait(&done, ANSWER_TIMEOUT).await?;
                    }
                }
                command = commands.recv() => match command {
                    None => return Ok(()),
                    Some(command) => self.on_command(command).await?,
                },
            }
        }
    }

    async fn on_command(&mut self, command: Command) -> anyhow::Result<()> {
        let label = self.controller.hooks.label;
        match command {
            Command::Add { machine, name, done } => {
                self.controller.hooks.names.insert(machine, name.clone());
                self.controller.add_machine(machine);
                self.client.set_filters(self.controller.requests_filters(self.since), ANSWER_TIMEOUT).await?;
                println!("{label}: added {name} ({}) at runtime", machine.to_hex());
                self.announce(&machine).await?;
                let _ = done.send(());
            }
            Command::Remove { machine, done } => {
                let name = self.controller.hooks.name(&machine);
                self.controller.remove_machine(&machine);
                self.finishing.remove(&machine);
                self.client.set_filters(self.controller.requests_filters(self.since), ANSWER_TIMEOUT).await?;
                println!("{label}: removed {name} at runtime (its requests are no longer subscribed)");
                let _ = done.send(());
            }
        }
        Ok(())
    }

    async fn on_event(&mut self, received: &dephy_device_sdk::nostr::Event) -> anyhow::Result<()> {
        let label = self.controller.hooks.label;
        let Ok(request) = event::parse_in_session(received, self.controller.session()) else { return Ok(()) };
        if !matches!(request.message, Message::Request { .. }) {
            return Ok(());
        }
        let name = self.controller.hooks.name(&request.machine);
        match self.controller.check(&request) {
            Err(ControllerError::NotARequest) => Ok(()),
            Err(e) => {
                println!("{label}: {name}: request {} not taken: {e}", short(&request.id));
                Ok(())
            }
            Ok(Step::Publish(status)) => {
                if let Message::Request { reason, .. } = &request.message {
                    println!(
                        "{label}: {name}: {reason:?} request {} from {}, Available",
                        short(&request.id),
                        short_key(&request.author)
                    );
                }
                self.finishing.remove(&request.machine);
                self.client.publish_and_wait(&status, ANSWER_TIMEOUT).await?;
                Ok(())
            }
            Ok(Step::Check(pending)) => {
                println!("{label}: {name}: request {} from {}", short(&request.id), short_key(&request.author));
                let checked = eligibility::check(&self.rpc, &self.requirement, pending.payload(), now()).await;
                let decision = match &checked {
                    Err(refusal) => Decision::Refuse(refusal.to_string()),
                    Ok(ok) => {
                        // The chain says yes; this machine also refuses an authorization it already took.
                        let payload = Payload::parse(pending.payload()).expect("the eligibility check parsed it");
                        match self.nonces.accept(&payload, ok.namespace_id, &ok.namespace, now()) {
                            Err(e) => Decision::Refuse(e.to_string()),
                            Ok(_) => {
                                println!(
                                    "{label}: {name}: eligible on chain (user {}, nonce {} = on-chain nonce, namespace {} \"{}\", {} of {} lamports available)",
                                    ok.user, ok.nonce, ok.namespace_id, ok.namespace, ok.amount, ok.available
                                );
                                Decision::Accept
                            }
                        }
                    }
                };
                let refused = match &decision {
                    Decision::Refuse(why) => Some(why.clone()),
                    Decision::Accept => None,
                };
                match self.controller.decide(pending, decision) {
                    Ok(working) => {
                        println!("{label}: {name} Working for {}", short(&request.id));
                        self.client.publish_and_wait(&working, ANSWER_TIMEOUT).await?;
                        self.finishing.insert(request.machine, Instant::now() + self.work);
                    }
                    Err(e) => {
                        println!("{label}: {name}: refused {}: {e}", short(&request.id));
                        if let Some(why) = refused {
                            let refusal = event::status_for(
                                self.controller_keys(),
                                self.controller.session(),
                                &request.machine,
                                Status::Available,
                                Reason::UserRequest,
                                request.id,
                                &serde_json::json!({ "refused": why }).to_string(),
                            );
                            self.client.publish_and_wait(&refusal, ANSWER_TIMEOUT).await?;
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// `abcdef12…7890`: a key shortened for the tutorials' output.
pub fn short_key(key: &PublicKey) -> String {
    let hex = key.to_hex();
    format!("{}…{}", &hex[..8], &hex[60..])
}

/// Reads a key given as hex or npub.
pub fn parse_key(text: &str) -> anyhow::Result<PublicKey> {
    PublicKey::parse(text.trim()).with_context(|| format!("{text:?} is not a hex or npub public key"))
}
