//! Tutorial: a Gacha machine (see tutorials/gacha.md). Same roles as the charging station, in
//! DePHY's namespace 1 "Gacha": the user's authorization is checked on chain, the machine goes
//! Working (dispenses) and Available at once; the user then replays the same authorization in a
//! new Request, and the machine refuses it.

use std::time::Duration;

use clap::Parser as _;
use dephy_tutorials::chain;
use dephy_tutorials::paid::{Machine, PaidArgs, run_paid};

#[tokio::main]
async fn main() {
    let args = PaidArgs::parse();
    let gacha = Machine {
        name: "gacha",
        session: "dephy-gacha-controller",
        namespace: chain::GACHA,
        work: Duration::from_millis(300),
    };
    if let Err(e) = run_paid(gacha, args, true).await {
        eprintln!("gacha: error: {e:#}");
        std::process::exit(1);
    }
}
