//! Tutorial: a DeCharge-style charging station (see tutorials/decharge.md). One process runs the
//! station (a single device signing its own Status) and a user's dApp, which only talk through
//! the relay: the user's wallet is registered with DePHY's balance-payment program on the local
//! node, signs a payment authorization with its current on-chain nonce, and asks the station to
//! charge; the station checks the authorization on chain, goes Working with the Request's
//! payload in its Status, charges, and goes Available.

use std::time::Duration;

use clap::Parser as _;
use dephy_tutorials::chain;
use dephy_tutorials::paid::{Machine, PaidArgs, run_paid};

#[tokio::main]
async fn main() {
    let args = PaidArgs::parse();
    let station = Machine {
        name: "decharge",
        session: "dephy-decharge-controller",
        namespace: chain::DECHARGE,
        work: Duration::from_secs(2),
    };
    if let Err(e) = run_paid(station, args, false).await {
        eprintln!("decharge: error: {e:#}");
        std::process::exit(1);
    }
}
