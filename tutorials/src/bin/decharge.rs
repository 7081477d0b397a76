//! Tutorial: a DeCharge-style charging station (see tutorials/decharge.md). One process runs the
//! station's controller and a user's dApp, which only talk through the relay: the user signs a
//! payment authorization, pays the station's owner in SOL with the request id as memo, and asks
//! the station to charge; the station checks both, goes Working, charges, and goes Available.

use std::time::Duration;

use clap::Parser as _;
use dephy_tutorials::{Machine, PaidArgs, run_paid};

#[tokio::main]
async fn main() {
    let args = PaidArgs::parse();
    let station = Machine {
        session: "dephy-decharge-controller",
        namespace: "DeCharge",
        namespace_id: 0,
        work: Duration::from_secs(2),
        working_payload: |_| r#"{"charging":"started"}"#.to_string(),
        done_payload: |_| r#"{"charged_kwh":1.5}"#.to_string(),
    };
    if let Err(e) = run_paid(station, args, false).await {
        eprintln!("decharge: error: {e:#}");
        std::process::exit(1);
    }
}
