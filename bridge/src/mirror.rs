//! Mirroring: the GossipSub message format and the validation of what peers send.
//!
//! A message is the 32-byte event id followed by the event's JSON; the id doubles as the
//! GossipSub message id, so duplicates and loops end at the event id (GossipSub's duplicate
//! cache, then the relay's store). A received message is forwarded to other peers only after
//! [`validate`] accepts it: authorized source and forwarder, an id that matches the event,
//! a valid Schnorr signature, and the relay's own write policy.

use std::sync::Arc;

use libp2p::PeerId;
use libp2p::gossipsub::{Message, MessageAcceptance};
use nostr::{Event, JsonUtil as _};

use crate::authorize::Authorizer;
use crate::identity::wallet_of;
use crate::port::RelayPort;

/// The payload of one gossip message.
pub fn encode(id: &[u8; 32], json: &str) -> Vec<u8> {
    let mut data = Vec::with_capacity(32 + json.len());
    data.extend_from_slice(id);
    data.extend_from_slice(json.as_bytes());
    data
}

/// The verdict on one received message.
pub enum Verdict {
    /// Valid: forward it and ingest the event.
    Accept(Event),
    /// Invalid or forwarded by an unauthorized node: drop it and penalise the forwarder
    /// (GossipSub peer scoring, see `network.rs`).
    Reject(String),
    /// Valid but refused by this relay's own policy, or published by a node this relay does not
    /// (yet, or any more) authorize: drop it, no penalty.
    Ignore(String),
}

impl Verdict {
    pub fn acceptance(&self) -> MessageAcceptance {
        match self {
            Verdict::Accept(_) => MessageAcceptance::Accept,
            Verdict::Reject(_) => MessageAcceptance::Reject,
            Verdict::Ignore(_) => MessageAcceptance::Ignore,
        }
    }
}

/// Validates a message that `forwarder` relayed to us.
///
/// The relay's policy includes its rate limits (per author, and per forwarder in place of a
/// client's IP): an event over them is [`Verdict::Ignore`]d like any other policy refusal, so
/// it is neither stored here nor forwarded, and the forwarder is not penalised. The caller
/// counts it and has the event fetched later by catch-up (the forwarder holds it).
pub fn validate(message: &Message, forwarder: &PeerId, authorizer: &Authorizer, relay: &Arc<dyn RelayPort>) -> Verdict {
    let authorized = |peer: &PeerId| wallet_of(peer).is_some_and(|w| authorizer.is_authorized(&w));
    let Some(forwarder_wallet) = wallet_of(forwarder).filter(|w| authorizer.is_authorized(w)) else {
        return Verdict::Reject(format!("forwarded by {forwarder}, which is not an authorized node"));
    };
    match &message.source {
        Some(source) if authorized(source) => {}
        // The forwarder is authorized and may just see the registry differently for a moment (a
        // node registered or revoked since one of our refreshes): dropped, without the penalty
        // that peer scoring gives to invalid messages.
        Some(source) => return Verdict::Ignore(format!("published by {source}, which is not an authorized node here")),
        None => return Verdict::Reject("unsigned message".into()),
    }
    let Some((id, json)) = message.data.split_first_chunk::<32>() else {
        return Verdict::Reject("message shorter than an event id".into());
    };
    let Ok(json) = std::str::from_utf8(json) else {
        return Verdict::Reject("event JSON is not UTF-8".into());
    };
    let event = match Event::from_json(json) {
        Ok(event) => event,
        Err(e) => return Verdict::Reject(format!("not a Nostr event: {e}")),
    };
    if event.id.as_bytes() != id {
        return Verdict::Reject("message id is not the event id".into());
    }
    if let Err(e) = event.verify() {
        return Verdict::Reject(format!("invalid event: {e}"));
    }
    match relay.check(&event, json.len(), &forwarder_wallet) {
        Ok(()) => Verdict::Accept(event),
        Err(reason) => Verdict::Ignore(reason),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::future::BoxFuture;
    use libp2p::gossipsub::TopicHash;
    use nostr::{EventBuilder, Keys, Kind};

    use super::*;
    use crate::port::{Committing, Ingested, Inventory};
    use crate::registry::NodeEntry;
    use crate::registry::static_list::StaticRegistry;

    /// The relay's policy reduced to a size limit; nothing is stored in these tests.
    struct Policy {
        max_json: usize,
    }

    impl RelayPort for Policy {
        fn check(&self, _event: &Event, json_len: usize, _forwarder: &[u8; 32]) -> Result<(), String> {
            if json_len > self.max_json { Err("invalid: event too large".into()) } else { Ok(()) }
        }
        fn submit(&self, _event: Event) -> BoxFuture<'static, Committing> {
            let committed: Committing = Box::pin(std::future::ready(Ingested::New));
            Box::pin(std::future::ready(committed))
        }
        fn inventory(&self, _: crate::slice::Slice, _: usize) -> BoxFuture<'static, Result<Inventory, String>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn fetch(&self, _: Vec<[u8; 32]>) -> BoxFuture<'static, Result<Vec<String>, String>> {
            Box::pin(async { Ok(Vec::new()) })
        }
    }

    fn node() -> (PeerId, [u8; 32]) {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        (peer, crate::identity::wallet_of(&peer).unwrap())
    }

    async fn authorizer(wallets: &[[u8; 32]]) -> Arc<Authorizer> {
        let entries = wallets.iter().map(|w| NodeEntry { wallet: *w, domain: String::new(), online: 1, active: true });
        let registry = Arc::new(StaticRegistry::new(entries.collect()));
        let (auth, _rx) = Authorizer::new(registry, Duration::from_secs(60));
        auth.refresh().await.unwrap();
        auth
    }

    fn message(source: PeerId, data: Vec<u8>) -> Message {
        Message { source: Some(source), data, sequence_number: Some(1), topic: TopicHash::from_raw("t") }
    }

    #[tokio::test]
    async fn only_valid_events_from_authorized_nodes_are_accepted() {
        let (good, good_wallet) = node();
        let (rogue, _) = node();
        let auth = authorizer(&[good_wallet]).await;
        let relay: Arc<dyn RelayPort> = Arc::new(Policy { max_json: 2000 });
        let event = EventBuilder::new(Kind::from(1573u16), "x").sign_with_keys(&Keys::generate()).unwrap();
        let json = event.as_json();
        let data = encode(&event.id.to_bytes(), &json);

        let verdict = validate(&message(good, data.clone()), &good, &auth, &relay);
        assert!(matches!(verdict, Verdict::Accept(e) if e.id == event.id));

        // Published by a node outside our registry view, forwarded by an authorized one: dropped
        // without penalty (registry views may differ for a refresh interval); forwarded by a node
        // outside the registry: rejected.
        assert!(matches!(validate(&message(rogue, data.clone()), &good, &auth, &relay), Verdict::Ignore(_)));
        assert!(matches!(validate(&message(good, data.clone()), &rogue, &auth, &relay), Verdict::Reject(_)));
        let mut unsigned = message(good, data.clone());
        unsigned.source = None;
        assert!(matches!(validate(&unsigned, &good, &auth, &relay), Verdict::Reject(_)));

        // The message id must be the event id.
        let other = EventBuilder::new(Kind::from(1573u16), "y").sign_with_keys(&Keys::generate()).unwrap();
        let wrong_id = encode(&other.id.to_bytes(), &json);
        assert!(
            matches!(validate(&message(good, wrong_id), &good, &auth, &relay), Verdict::Reject(r) if r.contains("id"))
        );

        // A tampered event (content changed after signing) fails verification.
        let tampered = json.replace("\"content\":\"x\"", "\"content\":\"z\"");
        assert_ne!(tampered, json);
        let verdict = validate(&message(good, encode(&event.id.to_bytes(), &tampered)), &good, &auth, &relay);
        assert!(matches!(verdict, Verdict::Reject(_)));

        // Garbage and truncated payloads.
        assert!(matches!(validate(&message(good, vec![1, 2, 3]), &good, &auth, &relay), Verdict::Reject(_)));
        let garbage = encode(&event.id.to_bytes(), "{not json");
        assert!(matches!(validate(&message(good, garbage), &good, &auth, &relay), Verdict::Reject(_)));

        // Valid but over this relay's own limit: ignored (dropped without penalty).
        let strict: Arc<dyn RelayPort> = Arc::new(Policy { max_json: 10 });
        assert!(matches!(validate(&message(good, data), &good, &auth, &strict), Verdict::Ignore(_)));
    }
}
