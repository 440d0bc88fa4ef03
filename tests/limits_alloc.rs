//! `check` and `ip_key` allocate nothing: a counting allocator proves it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use seckill::limits::{TokenBuckets, ip_key};

mod counting_alloc;
use counting_alloc::allocations_in;

#[test]
fn checks_allocate_nothing() {
    let per_ip = TokenBuckets::new(200, 400, 1_024);
    let per_user = TokenBuckets::new(5, 10, 1_024);
    let disabled = TokenBuckets::new(0, 0, 0);
    let epoch = per_ip.epoch();
    // The first call draws the process's address key.
    ip_key(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let allocations = allocations_in(|| {
        for i in 0..100_000_u64 {
            let now = epoch + Duration::from_micros(i * 10);
            let v4 = IpAddr::V4(Ipv4Addr::from_bits(i as u32));
            let v6 = IpAddr::V6(Ipv6Addr::from_bits(u128::from(i) << 64 | 1));
            // Admitted, refused (hot key), evictions, and full groups all pass here:
            // 10,000 users over 1,024 slots at 5 tokens/s keep the table crowded.
            let _ = per_ip.check(ip_key(v4), now);
            let _ = per_ip.check(ip_key(v6), now);
            let _ = per_ip.check(7, now);
            let _ = per_user.check(i % 10_000, now);
            let _ = disabled.check(i, now);
        }
    });
    assert_eq!(allocations, 0);
    let (ip, user) = (per_ip.metrics(), per_user.metrics());
    assert!(ip.refused_empty > 0 && ip.evictions > 0 && user.refused_table_full > 0, "{ip:?} {user:?}");
}
