//! Payment-authorization vectors checked against an independent ed25519 implementation:
//! tweetnacl (npm `tweetnacl@1.0.3`, run by `tests/support/tweetnacl.js`; scripts/test installs
//! it into target/npm-tweetnacl). The SDK's signatures over DePHY's digest must equal
//! tweetnacl's (ed25519 is deterministic) and verify there; tampered fields must fail in both.

#[path = "support/node.rs"]
mod node;

use dephy_device_sdk::message::Payload;
use dephy_device_sdk::payment::authorization::{self, AuthorizationError};
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

/// Runs the tweetnacl script on `cases`.
fn tweetnacl(cases: &Value) -> Vec<Value> {
    serde_json::from_value(node::run_json("tweetnacl.js", "npm-tweetnacl", "tweetnacl@1.0.3", cases))
        .expect("tweetnacl.js prints a JSON array")
}

struct Case {
    seed: [u8; 32],
    namespace: &'static str,
    namespace_id: u64,
    nonce: u64,
    deadline: i64,
    extra: [u8; 64],
}

fn cases() -> Vec<Case> {
    let mut extra = [0u8; 64];
    for (i, b) in extra.iter_mut().enumerate() {
        *b = i as u8;
    }
    vec![
        Case {
            seed: [1; 32],
            namespace: "DeCharge",
            namespace_id: 1,
            nonce: 0,
            deadline: 1_900_000_000,
            extra: [0; 64],
        },
        Case { seed: [0x42; 32], namespace: "gacha", namespace_id: 2, nonce: 7, deadline: 1_767_225_600, extra },
        Case {
            seed: [0xfe; 32],
            namespace: "dephy-ns",
            namespace_id: u64::MAX,
            nonce: u64::MAX,
            deadline: -1,
            extra: [0xff; 64],
        },
    ]
}

#[test]
fn signatures_match_tweetnacl() {
    let mut input = Vec::new();
    let mut payloads = Vec::new();
    for c in cases() {
        let wallet = SigningKey::from_bytes(&c.seed);
        let payload = authorization::signed_payload(&wallet, c.namespace, c.namespace_id, c.nonce, c.deadline, c.extra);
        let info = payload.recover_info().unwrap();
        let digest = authorization::digest(c.namespace, &c.extra, c.namespace_id, c.nonce, c.deadline);
        assert!(digest.starts_with(&format!("DePHY vending machine/{}:\n", c.namespace)));
        input.push(json!({"seed": hex::encode(c.seed), "message": digest, "signature": hex::encode(&info.signature)}));
        // A tampered digest (other nonce) with the same signature: must fail in tweetnacl too.
        let other = authorization::digest(c.namespace, &c.extra, c.namespace_id, c.nonce ^ 1, c.deadline);
        input.push(json!({"seed": hex::encode(c.seed), "message": other, "signature": hex::encode(&info.signature)}));
        payloads.push((wallet, payload, info));
    }
    let answers = tweetnacl(&Value::Array(input));
    for (i, (wallet, payload, info)) in payloads.iter().enumerate() {
        let (genuine, tampered) = (&answers[2 * i], &answers[2 * i + 1]);
        assert_eq!(genuine["public_key"], json!(hex::encode(wallet.verifying_key().as_bytes())));
        assert_eq!(
            genuine["signature"],
            json!(hex::encode(&info.signature)),
            "tweetnacl signs the same bytes identically"
        );
        assert_eq!(genuine["verifies"], json!(true));
        assert_eq!(tampered["verifies"], json!(false), "tweetnacl rejects the signature on a tampered digest");
        assert_eq!(payload.user, bs58::encode(wallet.verifying_key().as_bytes()).into_string());
    }
}

#[test]
fn tampering_is_rejected_by_the_device() {
    let c = &cases()[1];
    let wallet = SigningKey::from_bytes(&c.seed);
    let payload = authorization::signed_payload(&wallet, c.namespace, c.namespace_id, c.nonce, c.deadline, c.extra);
    let now = c.deadline - 60;
    authorization::verify(&payload, c.namespace_id, c.namespace, now).unwrap();

    let with_info = |f: &dyn Fn(&mut dephy_device_sdk::message::RecoverInfo)| {
        let mut info = payload.recover_info().unwrap();
        f(&mut info);
        Payload { recover_info: info.to_json(), ..payload.clone() }
    };
    let flipped_sig = with_info(&|i| i.signature[10] ^= 1);
    let flipped_extra = with_info(&|i| i.extra_data[0] ^= 1);
    let zero_sig = with_info(&|i| i.signature = vec![0; 64]);
    for bad in [flipped_sig, flipped_extra, zero_sig] {
        assert!(
            matches!(
                authorization::verify(&bad, c.namespace_id, c.namespace, now),
                Err(AuthorizationError::BadSignature { .. })
            ),
            "a tampered authorization passed"
        );
    }
    assert!(matches!(
        authorization::verify(&payload, c.namespace_id, c.namespace, c.deadline + 1),
        Err(AuthorizationError::Expired { .. })
    ));
    let mut registry = authorization::NonceRegistry::new();
    registry.accept(&payload, c.namespace_id, c.namespace, now).unwrap();
    assert!(matches!(
        registry.accept(&payload, c.namespace_id, c.namespace, now),
        Err(AuthorizationError::NonceReused { .. })
    ));
}

#[test]
fn keccak256_known_answer() {
    use sha3::Digest as _;
    // keccak256("") — the Ethereum/Solana constant, distinct from SHA3-256("").
    assert_eq!(
        hex::encode(sha3::Keccak256::digest(b"")),
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    );
}
