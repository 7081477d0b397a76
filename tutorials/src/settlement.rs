//! A settlement service like DePHY's: it watches the Status events of a session and acts on
//! DePHY's balance-payment program with the namespace's `bot` key.
//!
//! - `Working` / `UserRequest`: the Status carries the user's Request payload (namespace, user,
//!   nonce, signed authorization). DeCharge-style namespaces get a `lock` of the prepaid amount
//!   at that nonce; the `"Gacha"` namespace gets a `pay` at once.
//! - `Available` / `UserBehaviour` (the machine finished): `settle` the lock at the payload's
//!   nonce, transferring the locked amount (at most the configured one) to the treasury.
//! - A refused `lock` (or `pay`) is answered as DePHY's server does: a **Request**
//!   `{to_status: Available, reason: LockFailed, initial_request}` p-tagged to the machine and
//!   signed by the settlement key, which the machine's controller obeys.
//!
//! The chain is behind the [`Chain`] trait: [`RpcChain`] signs with the bot and the payer and
//! submits over JSON-RPC. DePHY's program is not deployed on the tutorials' local node, so there
//! the transactions are built, signed and submitted and the node's refusal is reported as it
//! says it; the tests use another [`Chain`] only for what that node cannot do (a lock or settle
//! that succeeds).

use std::future::Future;
use std::str::FromStr as _;

use dephy_device_sdk::event::{self, ParsedEvent};
use dephy_device_sdk::message::{Message, Payload, Reason, Status};
use dephy_device_sdk::nostr::{Event, EventId, Keys, PublicKey};
use dephy_device_sdk::payment::accounts::{self, LockAccount, NamespaceAccount};
use dephy_device_sdk::payment::instructions::{Ed25519RecoverInfo, Lock, Pay, Settle};
use solana_instruction::Instruction;
use solana_keypair::Keypair;
use solana_pubkey::Pubkey;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_signer::Signer as _;
use solana_transaction::Transaction;

/// What the service needs from the chain.
pub trait Chain {
    /// The balance-payment program.
    fn program(&self) -> Pubkey;
    /// The key that signs lock/settle/pay (must be the namespace's `bot`).
    fn bot(&self) -> Pubkey;
    /// The fee payer.
    fn payer(&self) -> Pubkey;
    /// The NamespaceAccount `id`, if it exists.
    fn namespace(&self, id: u64) -> impl Future<Output = Result<Option<NamespaceAccount>, String>> + Send;
    /// The LockAccount of `user` at `nonce`, if it exists.
    fn lock_account(
        &self,
        user: &Pubkey,
        nonce: u64,
    ) -> impl Future<Output = Result<Option<LockAccount>, String>> + Send;
    /// Signs `instruction` with the payer and the bot and submits it; the transaction signature,
    /// or the node's error as it gave it.
    fn submit(&self, instruction: Instruction) -> impl Future<Output = Result<String, String>> + Send;
}

/// [`Chain`] over Solana JSON-RPC.
pub struct RpcChain {
    pub rpc: RpcClient,
    pub program: Pubkey,
    pub bot: Keypair,
    pub payer: Keypair,
}

impl Chain for RpcChain {
    fn program(&self) -> Pubkey {
        self.program
    }

    fn bot(&self) -> Pubkey {
        self.bot.pubkey()
    }

    fn payer(&self) -> Pubkey {
        self.payer.pubkey()
    }

    async fn namespace(&self, id: u64) -> Result<Option<NamespaceAccount>, String> {
        crate::chain::namespace(&self.rpc, &self.program, id).await.map_err(|e| format!("{e:#}"))
    }

    async fn lock_account(&self, user: &Pubkey, nonce: u64) -> Result<Option<LockAccount>, String> {
        let address = accounts::lock_pda(&self.program, user, nonce);
        let account = self
            .rpc
            .get_account_with_commitment(&address, self.rpc.commitment())
            .await
            .map_err(|e| e.to_string())?
            .value;
        match account {
            None => Ok(None),
            Some(a) if a.owner != self.program => Err(format!("LockAccount {address} is owned by {}", a.owner)),
            Some(a) => LockAccount::decode(&a.data).map(Some).map_err(|e| e.to_string()),
        }
    }

    async fn submit(&self, instruction: Instruction) -> Result<String, String> {
        let blockhash = self.rpc.get_latest_blockhash().await.map_err(|e| e.to_string())?;
        let tx = Transaction::new_signed_with_payer(
            &[instruction],
            Some(&self.payer.pubkey()),
            &[&self.payer, &self.bot],
            blockhash,
        );
        self.rpc
            .send_and_confirm_transaction(&tx)
            .await
            .map(|s| s.to_string())
            .map_err(|e| e.to_string().trim_end_matches([';', ' ']).to_string())
    }
}

/// What the service did with one event.
#[derive(Debug)]
pub enum Outcome {
    /// Not a Status it acts on (with why).
    Ignored(String),
    Locked {
        signature: String,
        user: String,
        nonce: u64,
        amount: u64,
    },
    Paid {
        signature: String,
        user: String,
        nonce: u64,
        amount: u64,
    },
    /// The lock (or pay) was refused: `request` is the LockFailed Request to publish.
    LockFailed {
        error: String,
        request: Box<Event>,
    },
    Settled {
        signature: String,
        user: String,
        nonce: u64,
        amount: u64,
    },
    SettleFailed {
        error: String,
    },
}

/// The service's decisions.
pub struct Settlement<C: Chain> {
    pub chain: C,
    /// The settlement service's Nostr key (signs the LockFailed Requests).
    pub keys: Keys,
    pub session: String,
    /// The prepaid amount locked (and at most settled), or paid, per session, in lamports.
    pub amount: u64,
    /// Authors whose Status events are acted on; empty = any.
    pub controllers: Vec<PublicKey>,
}

impl<C: Chain> Settlement<C> {
    /// Acts on one event of the session.
    pub async fn on_event(&self, event: &Event) -> Outcome {
        let parsed = match event::parse_in_session(event, &self.session) {
            Ok(p) => p,
            Err(e) => return Outcome::Ignored(e.to_string()),
        };
        if !self.controllers.is_empty() && !self.controllers.contains(&parsed.author) {
            return Outcome::Ignored(format!("Status from {}, not a configured controller", parsed.author));
        }
        let Message::Status { status, reason, initial_request, payload } = &parsed.message else {
            return Outcome::Ignored(format!("a {}, not a Status", parsed.message.name()));
        };
        match (status, reason) {
            (Status::Working, Reason::UserRequest) => self.on_working(&parsed, *initial_request, payload).await,
            (Status::Available, Reason::UserBehaviour) => self.on_finished(payload).await,
            _ => Outcome::Ignored(format!("Status {status:?}/{reason:?}")),
        }
    }

    fn lock_failed(&self, parsed: &ParsedEvent, initial_request: EventId, error: String) -> Outcome {
        let request = event::request(
            &self.keys,
            &self.session,
            &parsed.machine,
            Status::Available,
            Reason::LockFailed,
            Some(initial_request),
            "",
        );
        Outcome::LockFailed { error, request: Box::new(request) }
    }

    async fn on_working(&self, parsed: &ParsedEvent, initial_request: EventId, payload: &str) -> Outcome {
        let fail = |error: String| self.lock_failed(parsed, initial_request, error);
        let (payload, user, recover_info) = match parse_payment(payload) {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
        let namespace = match self.namespace(payload.namespace_id).await {
            Ok(ns) => ns,
            Err(e) => return fail(e),
        };
        let program = self.chain.program();
        if namespace.name == "Gacha" {
            let ix = Pay {
                namespace_id: payload.namespace_id,
                user,
                treasury: namespace.treasury,
                bot: self.chain.bot(),
                payer: self.chain.payer(),
                recover_info,
                amount_to_transfer: self.amount,
            }
            .instruction(&program);
            return match self.chain.submit(ix).await {
                Ok(signature) => {
                    Outcome::Paid { signature, user: payload.user, nonce: payload.nonce, amount: self.amount }
                }
                Err(e) => fail(format!("pay: {e}")),
            };
        }
        let ix = Lock {
            namespace_id: payload.namespace_id,
            user,
            user_nonce: payload.nonce,
            bot: self.chain.bot(),
            payer: self.chain.payer(),
            recover_info,
            amount: self.amount,
        }
        .instruction(&program);
        match self.chain.submit(ix).await {
            Ok(signature) => {
                Outcome::Locked { signature, user: payload.user, nonce: payload.nonce, amount: self.amount }
            }
            Err(e) => fail(format!("lock: {e}")),
        }
    }

    async fn on_finished(&self, payload: &str) -> Outcome {
        let (payload, user, _) = match parse_payment(payload) {
            Ok(p) => p,
            Err(e) => return Outcome::SettleFailed { error: e },
        };
        let namespace = match self.namespace(payload.namespace_id).await {
            Ok(ns) => ns,
            Err(e) => return Outcome::SettleFailed { error: e },
        };
        if namespace.name == "Gacha" {
            return Outcome::Ignored("Gacha is paid at once, nothing to settle".into());
        }
        // DePHY's server reads the LOCK PDA; the program refuses a settle without it, and this
        // service lets it say so (the node's answer is reported as it gives it).
        let amount = match self.chain.lock_account(&user, payload.nonce).await {
            Ok(Some(lock)) if lock.namespace_id != payload.namespace_id => {
                return Outcome::SettleFailed {
                    error: format!(
                        "the lock at nonce {} is for namespace {}, not {}",
                        payload.nonce, lock.namespace_id, payload.namespace_id
                    ),
                };
            }
            Ok(Some(lock)) => lock.amount.min(self.amount),
            Ok(None) => self.amount,
            Err(e) => return Outcome::SettleFailed { error: e },
        };
        let ix = Settle {
            namespace_id: payload.namespace_id,
            user,
            nonce: payload.nonce,
            treasury: namespace.treasury,
            bot: self.chain.bot(),
            payer: self.chain.payer(),
            amount_to_transfer: amount,
        }
        .instruction(&self.chain.program());
        match self.chain.submit(ix).await {
            Ok(signature) => Outcome::Settled { signature, user: payload.user, nonce: payload.nonce, amount },
            Err(e) => Outcome::SettleFailed { error: format!("settle: {e}") },
        }
    }

    /// The namespace, which must exist and have this service's bot.
    async fn namespace(&self, id: u64) -> Result<NamespaceAccount, String> {
        let ns = self.chain.namespace(id).await?.ok_or_else(|| format!("namespace {id} does not exist on chain"))?;
        if ns.bot != self.chain.bot() {
            return Err(format!("namespace {id}'s bot is {}, not this service's {}", ns.bot, self.chain.bot()));
        }
        Ok(ns)
    }
}

/// The Status payload as DePHY's server parses it: the payment payload, the user's key, the
/// recover info as the program's argument.
fn parse_payment(payload: &str) -> Result<(Payload, Pubkey, Ed25519RecoverInfo), String> {
    let parsed = Payload::parse(payload).map_err(|e| format!("the Status payload: {e}"))?;
    let user =
        Pubkey::from_str(&parsed.user).map_err(|_| format!("user {:?} is not a base58 Solana address", parsed.user))?;
    let info = parsed.recover_info().map_err(|e| e.to_string())?;
    let info = Ed25519RecoverInfo::try_from(&info).map_err(|e| e.to_string())?;
    Ok((parsed, user, info))
}
