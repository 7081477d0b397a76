//! The deterministic DePHY population shared by `populate` and `req`, so `req` can target what
//! `populate` wrote without a state file: the same flags give the same sessions, machines and
//! controllers.
//!
//! Machine `m` belongs to session `m % sessions` and is driven by controller `m % controllers`
//! (the event's author); its `p` tag is the public key of a key pair derived from its index.

use anyhow::{Result, bail};
use nostr::hashes::{Hash, sha256};
use nostr::prelude::*;

#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Population {
    /// Number of sessions (`s` tags `bench-session-<i>`).
    #[arg(long, default_value_t = 100, value_parser = crate::at_least_one)]
    pub sessions: usize,
    /// Number of machines (`p` tags); at least --sessions, so every session has machines.
    #[arg(long, default_value_t = 1000, value_parser = crate::at_least_one)]
    pub machines: usize,
    /// Number of controllers (event authors).
    #[arg(long, default_value_t = 10, value_parser = crate::at_least_one)]
    pub controllers: usize,
}

impl Population {
    /// Reject shapes in which some session would have no machine.
    pub fn validate(&self) -> Result<()> {
        if self.machines < self.sessions {
            bail!(
                "--machines ({}) must be at least --sessions ({}): machine m belongs to session \
                 m % sessions, so every session needs a machine",
                self.machines,
                self.sessions
            );
        }
        Ok(())
    }

    /// Session of machine `machine`.
    pub fn session_of(&self, machine: usize) -> usize {
        machine % self.sessions
    }

    /// Controller (author) of machine `machine`.
    pub fn controller_of(&self, machine: usize) -> usize {
        machine % self.controllers
    }

    /// Number of machines in `session`.
    pub fn machines_in(&self, session: usize) -> usize {
        (self.machines - session).div_ceil(self.sessions)
    }

    /// The `nth` machine of `session` (`nth < machines_in(session)`).
    pub fn machine_in(&self, session: usize, nth: usize) -> usize {
        session + nth * self.sessions
    }

    /// Public keys of all machines, by index.
    pub fn machine_pubkeys(&self) -> Vec<PublicKey> {
        (0..self.machines).map(|m| derive_keys("machine", m).public_key()).collect()
    }

    /// Key pairs of all controllers, by index.
    pub fn controller_keys(&self) -> Vec<Keys> {
        (0..self.controllers).map(|c| derive_keys("controller", c)).collect()
    }
}

/// The `s` tag of session `session`.
pub fn session_name(session: usize) -> String {
    format!("bench-session-{session}")
}

/// Key pair number `index` of `role`: its secret key is `sha256("relay-bench/<role>/<index>")`.
pub fn derive_keys(role: &str, index: usize) -> Keys {
    let digest = sha256::Hash::hash(format!("relay-bench/{role}/{index}").as_bytes());
    let secret = SecretKey::from_slice(&digest.to_byte_array())
        .expect("a SHA-256 digest is a valid secp256k1 secret key except with negligible probability");
    Keys::new(secret)
}
