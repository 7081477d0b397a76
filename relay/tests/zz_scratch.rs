mod common;
use common::*;
use nostr::prelude::*;
use std::time::Duration;
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch_tags_scaling() {
    let cfg = "[limits]\nmax_event_tags = 40000\nmax_event_bytes = 2000000\nmax_message_bytes = 3000000\n";
    let (_db, relay) = Relay::start(Backend::Sqlite, cfg).await;
    let mut c = relay.connect().await;
    c.timeout = Duration::from_secs(20);
    let k = Keys::generate();
    for n in [10000usize, 12000, 16000, 20000] {
        for name in ["t", "long"] {
            let values: Vec<String> = (0..n).map(|i| format!("{i}")).collect();
            let arr: Vec<[&str; 2]> = values.iter().map(|v| [name, v.as_str()]).collect();
            let tags: Vec<&[&str]> = arr.iter().map(|t| &t[..]).collect();
            let e = dephy(&k, &format!("{n}{name}"), &tags, now());
            let s = std::time::Instant::now();
            let r = c.publish(&e).await;
            eprintln!("{n} {name} tags: {:?} {:?}", s.elapsed(), r);
        }
    }
    eprintln!("{}", relay.log_tail(5));
}
