//! The user's dApp in the paid tutorials, as DePHY's works: a Solana wallet registered with the
//! balance-payment program (its UserAccount and vault seeded on the local node), which reads
//! its **current on-chain nonce**, signs DePHY's payment authorization with it, subscribes to
//! the machine's Status events (signed by its controller) and only then publishes the Request
//! from a throwaway Nostr key.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use dephy_device_sdk::message::{Message, Reason, Status};
use dephy_device_sdk::nostr::{Event, EventId, Keys, PublicKey, Timestamp};
use dephy_device_sdk::payment::authorization;
use dephy_device_sdk::{Client, ClientConfig, event, filters};
use ed25519_dalek::SigningKey;
use solana_keypair::Keypair;
use solana_pubkey::Pubkey;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_signer::Signer as _;

use crate::{ANSWER_TIMEOUT, chain, now, short};

/// A user and their relay client, following one machine.
pub struct Dapp {
    pub label: String,
    pub wallet: Keypair,
    session: String,
    pub machine: PublicKey,
    client: Client,
}

impl Dapp {
    /// A fresh wallet, registered on the local chain with `vault_lamports` deposited (its
    /// UserAccount starts at a random nonce, as an account that has paid before would), and a
    /// client subscribed to `machine`'s Status events signed by `controller`.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        label: &str,
        relay: &str,
        state: &Path,
        rpc: &RpcClient,
        program: &Pubkey,
        session: &str,
        machine: PublicKey,
        controller: PublicKey,
        vault_lamports: u64,
    ) -> anyhow::Result<Dapp> {
        let wallet = Keypair::new_from_array(rand::random());
        let nonce = rand::random::<u16>() as u64;
        chain::seed_user(rpc, program, &wallet.pubkey(), nonce, 0, vault_lamports).await?;
        println!("{label}: wallet {} registered, {vault_lamports} lamports in its vault", wallet.pubkey());
        let filter = filters::statuses_of(session, &controller, &[machine]).since(Timestamp::now());
        let client = Client::start(
            ClientConfig::new(
                [relay.to_string()],
                state.join(format!("{label}-{}", &wallet.pubkey().to_string()[..8])),
            )
            .subscribe([filter]),
        )?;
        client
            .wait_subscribed(ANSWER_TIMEOUT)
            .await
            .with_context(|| format!("{label} could not subscribe to the relay"))?;
        Ok(Dapp { label: label.into(), wallet, session: session.into(), machine, client })
    }

    /// Reads the user's on-chain nonce, signs an authorization for namespace `ns` with it and
    /// publishes a start Request; returns it and its payload.
    pub async fn request(
        &mut self,
        rpc: &RpcClient,
        program: &Pubkey,
        ns: (u64, &str),
    ) -> anyhow::Result<(Event, String)> {
        let nonce = chain::user_account(rpc, program, &self.wallet.pubkey()).await?.nonce;
        let signing = SigningKey::from_bytes(self.wallet.secret_bytes());
        let payload = authorization::signed_payload(&signing, ns.1, ns.0, nonce, now() + 600, [0; 64]).to_json();
        println!(
            "{}: on-chain nonce {nonce}, signed a payment authorization for namespace {} \"{}\"",
            self.label, ns.0, ns.1
        );
        let request = self.send(&payload).await?;
        Ok((request, payload))
    }

    /// Publishes a start Request carrying `payload` from a fresh throwaway key.
    pub async fn send(&mut self, payload: &str) -> anyhow::Result<Event> {
        let request = event::request(
            &Keys::generate(),
            &self.session,
            &self.machine,
            Status::Working,
            Reason::UserRequest,
            None,
            payload,
        );
        self.client.publish_and_wait(&request, ANSWER_TIMEOUT).await?;
        println!("{}: sent request {}", self.label, short(&request.id));
        Ok(request)
    }

    /// The next Status answering `request` (status, reason, payload), or `None` after `timeout`.
    pub async fn next_status(
        &mut self,
        request: &EventId,
        timeout: Duration,
    ) -> anyhow::Result<Option<(Status, Reason, String)>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(received) = self.client.recv_timeout(left).await else { return Ok(None) };
            let Ok(parsed) = event::parse_in_session(&received.event, &self.session) else { continue };
            if let Message::Status { status, reason, initial_request, payload } = parsed.message
                && initial_request == *request
            {
                return Ok(Some((status, reason, payload)));
            }
        }
    }

    /// Follows `request` until the machine is Available again; prints what happens. Returns
    /// the reason of the final Available Status (`UserBehaviour` when the machine finished,
    /// `LockFailed` when the settlement service stopped it, `UserRequest` when it refused).
    pub async fn follow(&mut self, request: &EventId, payload: &str) -> anyhow::Result<(Reason, String)> {
        loop {
            let Some((status, reason, status_payload)) = self.next_status(request, ANSWER_TIMEOUT).await? else {
                anyhow::bail!("{}: no answer from the machine within {ANSWER_TIMEOUT:?}", self.label)
            };
            let carries = if status_payload == payload { " (Status payload = my Request's payload)" } else { "" };
            match (status, reason) {
                (Status::Working, _) => println!("{}: machine is Working{carries}", self.label),
                (Status::Available, Reason::UserRequest) => {
                    let why = serde_json::from_str::<serde_json::Value>(&status_payload)
                        .ok()
                        .and_then(|v| v["refused"].as_str().map(str::to_string))
                        .unwrap_or(status_payload.clone());
                    println!("{}: refused, machine stays Available: {why}", self.label);
                    return Ok((reason, why));
                }
                (Status::Available, reason) => {
                    println!("{}: machine is Available again, reason {reason:?}{carries}", self.label);
                    return Ok((reason, status_payload));
                }
            }
        }
    }
}
