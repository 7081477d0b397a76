//! Tutorial: a Gacha machine (see tutorials/gacha.md). The user pays (SOL transfer with the
//! request id as memo, plus a signed payment authorization), the machine verifies the payment,
//! goes Working and dispenses a prize derived from the request id, then goes Available. The
//! user then replays the same payment for a second request, and the machine refuses it.

use std::time::Duration;

use clap::Parser as _;
use dephy_tutorials::{Machine, PaidArgs, run_paid};

const PRIZES: [&str; 4] = ["rubber duck", "golden capsule", "robot keychain", "sticker pack"];

#[tokio::main]
async fn main() {
    let args = PaidArgs::parse();
    let gacha = Machine {
        session: "dephy-gacha-controller",
        namespace: "Gacha",
        namespace_id: 1,
        work: Duration::from_millis(300),
        working_payload: |id| format!(r#"{{"prize":"{}"}}"#, PRIZES[id.as_bytes()[0] as usize % PRIZES.len()]),
        done_payload: |_| r#"{"dispensed":true}"#.to_string(),
    };
    if let Err(e) = run_paid(gacha, args, true).await {
        eprintln!("gacha: error: {e:#}");
        std::process::exit(1);
    }
}
