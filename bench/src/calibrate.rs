//! `calibrate`: what one BIP-340 Schnorr signature check costs on this machine right now, in
//! CPU time of one thread, with the library and call the relay uses (libsecp256k1 through
//! `nostr::secp256k1`, key decoded once as the relay's key cache does).
//!
//! On shared cores the relay's CPU per event swings with its neighbours (the same build has
//! measured 100-145 µs per ingested event within one evening). The signature check is the one
//! fixed piece of work every event costs, so the relay's CPU per event divided by this figure,
//! measured in the same minute, is a cost that compares across runs and machines.

use std::time::Duration;

use anyhow::{Result, bail};
use nostr::secp256k1::{Keypair, Message, SECP256K1, XOnlyPublicKey, schnorr::Signature};

use crate::stats::round3;
use crate::summary;

/// Signatures checked per round, and rounds; the figure is the median round (~0.1 s in all).
const CHECKS_PER_ROUND: u32 = 400;
const ROUNDS: usize = 5;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> Result<()> {
    let us = schnorr_verify_us()?;
    println!("one Schnorr signature check: {us:.2} us of CPU (median of {ROUNDS} rounds of {CHECKS_PER_ROUND})");
    summary::print("calibrate", serde_json::json!({ "schnorr_verify_us": round3(us) }));
    Ok(())
}

/// CPU microseconds of one Schnorr signature check on this thread: the median of a few rounds.
pub fn schnorr_verify_us() -> Result<f64> {
    let keys = nostr::Keys::generate();
    let keypair = Keypair::from_secret_key(SECP256K1, keys.secret_key());
    let (key, _) = XOnlyPublicKey::from_keypair(&keypair);
    let signed: Vec<(Message, Signature)> = (0u8..64)
        .map(|i| {
            let message = Message::from_digest([i; 32]);
            (message, SECP256K1.sign_schnorr_no_aux_rand(&message, &keypair))
        })
        .collect();
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = thread_cpu_time();
        for n in 0..CHECKS_PER_ROUND {
            let (message, sig) = &signed[n as usize % signed.len()];
            if SECP256K1.verify_schnorr(sig, message, &key).is_err() {
                bail!("calibration: a valid signature failed to verify (libsecp256k1 is broken here)");
            }
        }
        rounds.push(thread_cpu_time().saturating_sub(start));
    }
    rounds.sort();
    Ok(rounds[ROUNDS / 2].as_secs_f64() * 1e6 / f64::from(CHECKS_PER_ROUND))
}

/// CPU time used so far by the calling thread (user and system).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec, which lives on this stack frame.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "CLOCK_THREAD_CPUTIME_ID is always available on Linux");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_time_counts_this_threads_work_only() {
        let before = thread_cpu_time();
        std::thread::sleep(Duration::from_millis(50));
        let slept = thread_cpu_time().saturating_sub(before);
        assert!(slept < Duration::from_millis(50), "a sleeping thread used {slept:?} of CPU");
        let (before, wall) = (thread_cpu_time(), std::time::Instant::now());
        let mut x = 0u64;
        while wall.elapsed() < Duration::from_millis(20) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(x > 0 && thread_cpu_time() > before, "20 ms of busy looping used no CPU time");
    }

    #[test]
    fn a_signature_check_costs_some_cpu() {
        let us = schnorr_verify_us().unwrap();
        assert!(us.is_finite() && us > 0.0, "{us}");
    }
}
