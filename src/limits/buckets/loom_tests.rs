//! Every interleaving of the compare-and-swap protocol on a one-group table
//! of two slots, explored by loom:
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --lib loom`.

use std::time::Instant;

use loom::sync::Arc;
use loom::thread;

use super::*;

const SEED: u64 = 7;
const NOW_NS: u64 = 5 * NS_PER_S;

/// rate 1/s, burst 1, one group of two slots.
fn one_group() -> Arc<TokenBuckets> {
    let limits = TokenBuckets::build(1, 1, 2, SEED, Instant::now());
    assert_eq!(limits.slots(), 2);
    Arc::new(limits)
}

fn check(limits: &TokenBuckets, key: u64, now_ns: u64) -> bool {
    limits.table.as_ref().unwrap().check(key, now_ns).is_ok()
}

/// Two loops install the same new key at once: one bucket, one token.
#[test]
fn loom_racing_installs_of_one_key_admit_once() {
    loom::model(|| {
        let limits = one_group();
        let peer = {
            let limits = limits.clone();
            thread::spawn(move || check(&limits, 1, NOW_NS))
        };
        let mine = check(&limits, 1, NOW_NS);
        let theirs = peer.join().unwrap();
        assert!(mine ^ theirs, "exactly one admitted: {mine} {theirs}");
        assert!(!check(&limits, 1, NOW_NS));
        assert_eq!(limits.metrics().refused_contended, 0);
    });
}

/// A key spends its full bucket while another key takes that slot over:
/// neither spends the other's tokens, and both keep exactly their own debt.
/// Burst 2, so that spending a token of the wrong bucket would be admitted
/// and show up as one request too many.
#[test]
fn loom_takeover_races_the_owner() {
    loom::model(|| {
        let limits = Arc::new(TokenBuckets::build(1, 2, 2, SEED, Instant::now()));
        // Key 1 owns a bucket that is full again at NOW_NS.
        assert!(check(&limits, 1, 0));
        let owner = {
            let limits = limits.clone();
            thread::spawn(move || (0..3).filter(|_| check(&limits, 1, NOW_NS)).count())
        };
        let newcomer = check(&limits, 2, NOW_NS);
        let owner_admitted = owner.join().unwrap();
        assert!(newcomer);
        assert_eq!(owner_admitted, 2);
        assert!(!check(&limits, 1, NOW_NS), "key 1 keeps its debt");
        assert!(check(&limits, 2, NOW_NS), "key 2 keeps its second token");
        assert!(!check(&limits, 2, NOW_NS), "key 2 keeps its debt");
        assert_eq!(limits.metrics().refused_contended, 0);
    });
}
