//! Which address a request comes from, for the per-address rate limit.
//! `X-Forwarded-For` is believed only when the TCP peer is one of
//! `server.trusted_proxies` (contract §4); then the client is the rightmost
//! address that is not itself a trusted proxy, because everything left of it
//! was written by the client and can be forged.

use std::net::IpAddr;

use seckill_config::Cidr;

/// The client's address for `peer` and its `X-Forwarded-For` header.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&[u8]>, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    let Some(header) = forwarded_for.filter(|_| is_trusted(peer)) else { return peer };
    let Ok(header) = std::str::from_utf8(header) else { return peer };
    let mut client = peer;
    for hop in header.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            // A malformed hop ends what can be believed.
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(peer: &str, xff: Option<&str>, trusted: &[&str], expected: &str) {
        let trusted: Vec<Cidr> = trusted.iter().map(|c| c.parse().unwrap()).collect();
        let got = client_ip(peer.parse().unwrap(), xff.map(str::as_bytes), &trusted);
        assert_eq!(got, expected.parse::<IpAddr>().unwrap(), "peer {peer} xff {xff:?}");
    }

    #[test]
    fn believed_only_from_trusted_proxies() {
        check("203.0.113.9", Some("1.2.3.4"), &[], "203.0.113.9");
        check("203.0.113.9", Some("1.2.3.4"), &["10.0.0.0/8"], "203.0.113.9");
        check("10.0.0.1", Some("1.2.3.4"), &["10.0.0.0/8"], "1.2.3.4");
        check("10.0.0.1", None, &["10.0.0.0/8"], "10.0.0.1");
    }

    #[test]
    fn rightmost_untrusted_hop_wins() {
        // The client forged "6.6.6.6"; our proxies appended the real hops.
        check("10.0.0.1", Some("6.6.6.6, 1.2.3.4, 10.0.0.7"), &["10.0.0.0/8"], "1.2.3.4");
        check("10.0.0.1", Some("10.0.0.9, 10.0.0.7"), &["10.0.0.0/8"], "10.0.0.9");
        check("10.0.0.1", Some("garbage, 1.2.3.4"), &["10.0.0.0/8"], "1.2.3.4");
        check("10.0.0.1", Some("1.2.3.4, garbage"), &["10.0.0.0/8"], "10.0.0.1");
        check("::1", Some("2001:db8::1"), &["::1/128"], "2001:db8::1");
    }
}
