//! The NIP-11 relay information document, built from the configuration so that it only
//! claims what this relay enforces.

use serde_json::{Value, json};

use crate::config::Config;

/// NIPs implemented by this relay.
pub const SUPPORTED_NIPS: &[u16] = &[1, 9, 11, 40, 42, 45, 62, 70, 77];

/// `anchor_pubkey`: the Solana address that anchors checkpoints, when anchoring is configured.
pub fn document(cfg: &Config, pubkey_hex: &str, anchor_pubkey: Option<&str>) -> Value {
    let l = &cfg.limits;
    let mut doc = json!({
        "name": cfg.info.name,
        "description": cfg.info.description,
        "pubkey": pubkey_hex,
        "supported_nips": SUPPORTED_NIPS,
        "software": env!("CARGO_PKG_REPOSITORY"),
        "version": env!("CARGO_PKG_VERSION"),
        "limitation": {
            "max_message_length": l.max_message_bytes,
            "max_subscriptions": l.max_subscriptions,
            "max_filters": l.max_filters,
            "max_limit": l.max_limit,
            "default_limit": l.default_limit,
            "max_subid_length": l.max_subid_length,
            "max_event_tags": l.max_event_tags,
            "max_content_length": l.max_content_bytes,
            "min_pow_difficulty": 0,
            "auth_required": cfg.auth.required_for_write || cfg.auth.required_for_read,
            "payment_required": false,
            "restricted_writes": cfg.auth.required_for_write,
            "created_at_upper_limit": l.created_at_future_secs,
        },
    });
    if l.created_at_past_secs > 0 {
        doc["limitation"]["created_at_lower_limit"] = json!(l.created_at_past_secs);
    }
    if let Some(contact) = &cfg.info.contact {
        doc["contact"] = Value::String(contact.clone());
    }
    if let Some(anchor) = anchor_pubkey {
        doc["anchor_pubkey"] = Value::String(anchor.to_string());
    }
    doc
}
