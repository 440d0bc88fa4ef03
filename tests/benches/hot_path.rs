//! The per-request checks of a sale request on one core (issue 4's target:
//! session validation + rate limits + path verification < 1 µs, allocation
//! free — `tests/hot_path_alloc.rs` counts the allocations).
//!
//! `cargo bench -p seckill --bench hot_path -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use seckill::auth::path::PathSigner;
use seckill::auth::session::{Cached, RevocationLog, Session, SessionCache, token_key};
use seckill::limits::{TokenBuckets, ip_key};

const USERS: u64 = 10_000;

fn bench(c: &mut Criterion) {
    let revocations = RevocationLog::new(4096);
    let mut sessions = SessionCache::new(65_536, 1_800_000, 5_000);
    let tokens: Vec<_> = (0..USERS)
        .map(|i| {
            let text = format!("{i:0>43}");
            token_key(text.as_bytes()).expect("43 base64url characters")
        })
        .collect();
    for (i, t) in tokens.iter().enumerate() {
        sessions.insert(*t, Session { user_id: i as u64, expires_ms: u64::MAX / 2 }, 0);
    }
    // Limits generous enough never to refuse: the cost of admitting is measured.
    let user_limits = TokenBuckets::new(1_000_000, 1_000_000, 262_144);
    let ip_limits = TokenBuckets::new(1_000_000, 1_000_000, 262_144);
    let signer = PathSigner::new(&[7; 32]);
    let paths: Vec<String> = (0..USERS).map(|u| signer.mint(u, 1, 10_000_000)).collect();
    let start = Instant::now();
    let mut i = 0usize;
    c.bench_function("session + user limit + ip limit + path verify", |b| {
        b.iter(|| {
            i = (i + 1) % USERS as usize;
            let now = start + Duration::from_micros(i as u64);
            let Cached::Valid { session, .. } = sessions.check(&tokens[i], 1_000, &revocations) else {
                panic!("warm session")
            };
            user_limits.check(session.user_id, now).expect("admitted");
            let ip = IpAddr::V4(Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8));
            ip_limits.check(ip_key(ip), now).expect("admitted");
            black_box(signer.verify(paths[i].as_bytes(), session.user_id, 1, 1_000)).expect("valid path");
        })
    });
    c.bench_function("path verify alone", |b| b.iter(|| black_box(signer.verify(paths[1].as_bytes(), 1, 1, 1_000))));
    c.bench_function("session check alone", |b| b.iter(|| black_box(sessions.check(&tokens[1], 1_000, &revocations))));
}

criterion_group!(benches, bench);
criterion_main!(benches);
