//! The relay filters of DePHY's device traffic, as DePHY's controllers and dApps send them: a
//! session's events, the requests addressed to a set of machines, the Status events a
//! controller signed for its machines, and the state-recovery query (one per machine, `limit` 1).

use nostr::{Alphabet, Filter, Kind, PublicKey, SingleLetterTag, Timestamp};

use crate::event::DEPHY_KIND;

/// Every kind 1573 event of `session` (`{"kinds":[1573],"#s":[session]}`).
pub fn session(session: &str) -> Filter {
    Filter::new().kind(Kind::from(DEPHY_KIND)).custom_tag(SingleLetterTag::lowercase(Alphabet::S), session)
}

/// Events of `session` p-tagged with one of `machines` from `since` on: DePHY's live filter
/// `{"kinds":[1573],"since":T,"#s":[session],"#p":[machines]}` (requests to the machines, and
/// the machines' Status events). `machines` must not be empty: a `#p` with no value matches
/// nothing on some relays and everything on others.
pub fn requests_for(session: &str, machines: &[PublicKey], since: Timestamp) -> Filter {
    self::session(session).pubkeys(machines.iter().copied()).since(since)
}

/// The Status events `controller` signed for `machines` in `session`
/// (`{"kinds":[1573],"#s":[session],"#p":[machines],"authors":[controller]}`). A machine that
/// signs its own Status is its own controller.
pub fn statuses_of(session: &str, controller: &PublicKey, machines: &[PublicKey]) -> Filter {
    self::session(session).pubkeys(machines.iter().copied()).author(*controller)
}

/// DePHY's state-recovery query for one machine: its newest event signed by `controller`
/// before `until`
/// (`{"kinds":[1573],"#s":[session],"#p":[machine],"authors":[controller],"until":T,"limit":1}`).
/// `limit` applies per filter, so recovering several machines takes one such filter each (they
/// can go in one query).
pub fn recovery(session: &str, controller: &PublicKey, machine: &PublicKey, until: Timestamp) -> Filter {
    self::session(session).pubkey(*machine).author(*controller).until(until).limit(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::Keys;

    #[test]
    fn filters_serialize_as_dephy_sends_them() {
        let (c, m1, m2) = (Keys::generate().public_key(), Keys::generate().public_key(), Keys::generate().public_key());
        let value = serde_json::to_value(recovery("s1", &c, &m1, Timestamp::from(100))).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"kinds":[1573],"#s":["s1"],"#p":[m1.to_hex()],"authors":[c.to_hex()],"until":100,"limit":1})
        );
        let value = serde_json::to_value(requests_for("s1", &[m1, m2], Timestamp::from(5))).unwrap();
        assert_eq!(value["since"], 5);
        assert_eq!(value["#p"].as_array().unwrap().len(), 2);
        let value = serde_json::to_value(statuses_of("s1", &c, &[m2])).unwrap();
        assert_eq!(value["authors"], serde_json::json!([c.to_hex()]));
        assert_eq!(value["#p"], serde_json::json!([m2.to_hex()]));
    }
}
