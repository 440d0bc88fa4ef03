//! Client addresses turned into bucket keys.
//!
//! IPv6 addresses count by their /64 prefix. A /64 is the smallest block that
//! stands for one subscriber: SLAAC needs a whole /64 per link, privacy
//! addresses (RFC 8981) rotate the low 64 bits at will, and hosting providers
//! hand a /64 to each server. Limiting single /128 addresses would give any
//! such client 2^64 fresh buckets; limiting a wider prefix (/56, /48) would
//! lump together unrelated subscribers of carriers that give each customer
//! one /64. An attacker who owns a wider block can still spread over many
//! /64s; what that costs them is bounded by the table (see the crate docs).
//!
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack socket
//! reports for IPv4 peers) count as the IPv4 address.

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::OnceLock;

/// Bits of an IPv6 address that identify one client.
pub const IPV6_PREFIX_BITS: u32 = 64;
// The prefix must fit the u64 that is hashed.
const _: () = assert!(IPV6_PREFIX_BITS <= 64);

/// SipHash with a key drawn at random once per process: clients cannot
/// choose addresses whose keys collide in the table, and the keys mean
/// nothing outside this process.
static IP_HASHER: OnceLock<RandomState> = OnceLock::new();

/// The bucket key of a client address (see the module docs for IPv6).
///
/// Allocation-free; costs one SipHash-1-3 of a few bytes.
pub fn ip_key(ip: IpAddr) -> u64 {
    let hasher = IP_HASHER.get_or_init(RandomState::new);
    // One write each: SipHash mixes the message length into its last block,
    // so a 4-byte IPv4 address and an 8-byte IPv6 prefix are different inputs
    // (1.2.3.4 is not 0:0:102:304::/64) without the cost of a family tag.
    match ip.to_canonical() {
        IpAddr::V4(v4) => hasher.hash_one(v4.to_bits()),
        IpAddr::V6(v6) => hasher.hash_one((v6.to_bits() >> (128 - IPV6_PREFIX_BITS)) as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn key(text: &str) -> u64 {
        ip_key(text.parse().unwrap())
    }

    #[test]
    fn ipv6_counts_by_slash_64() {
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    #[test]
    fn ipv4_counts_by_address_and_mapped_is_ipv4() {
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        assert_eq!(key("192.0.2.1"), key("::ffff:192.0.2.1"));
    }

    #[test]
    fn families_do_not_collide() {
        let v4 = Ipv4Addr::new(1, 2, 3, 4);
        let v6 = Ipv6Addr::from_bits(u128::from(v4.to_bits()) << 64);
        assert_ne!(ip_key(v4.into()), ip_key(v6.into()));
        assert_ne!(key("0.0.0.0"), key("::"));
    }
}
