//! Session validation, both rate limits and path verification allocate
//! nothing once warm (issue 4): a counting global allocator proves it over
//! 100,000 checks.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use seckill::auth::path::PathSigner;
use seckill::auth::session::{Cached, RevocationLog, Session, SessionCache, token_key};
use seckill::limits::{TokenBuckets, ip_key};

mod counting_alloc;
use counting_alloc::allocations_in;

#[test]
fn session_limits_and_path_allocate_nothing() {
    const USERS: usize = 1_000;
    let revocations = RevocationLog::new(16);
    let mut sessions = SessionCache::new(4_096, 1_800_000, 5_000);
    let tokens: Vec<_> = (0..USERS).map(|i| token_key(format!("{i:0>43}").as_bytes()).unwrap()).collect();
    for (i, t) in tokens.iter().enumerate() {
        sessions.insert(*t, Session { user_id: i as u64, expires_ms: u64::MAX / 2 }, 0);
    }
    let user_limits = TokenBuckets::new(1_000_000, 1_000_000, 1 << 16);
    let ip_limits = TokenBuckets::new(1_000_000, 1_000_000, 1 << 16);
    let signer = PathSigner::new(&[7; 32]);
    let paths: Vec<String> = (0..USERS).map(|u| signer.mint(u as u64, 1, 10_000_000)).collect();
    let start = Instant::now();

    let allocations = allocations_in(|| {
        for n in 0..100_000usize {
            let i = n % USERS;
            let now = start + Duration::from_micros(n as u64);
            let Cached::Valid { session, .. } = sessions.check(&tokens[i], 1_000, &revocations) else {
                panic!("warm session")
            };
            assert!(user_limits.check(session.user_id, now).is_ok());
            let ip = IpAddr::V4(Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8));
            assert!(ip_limits.check(ip_key(ip), now).is_ok());
            assert!(signer.verify(paths[i].as_bytes(), session.user_id, 1, 1_000).is_ok());
        }
    });
    assert_eq!(allocations, 0, "allocations on the front hot path over 100,000 checks");
}
