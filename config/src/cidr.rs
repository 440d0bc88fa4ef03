//! `server.trusted_proxies`: IPv4 and IPv6 networks in CIDR notation.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A network such as `10.0.0.0/8` or `fd00::/8`; a bare address is a network
/// of one (`/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// The network address (host bits are zero).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// How many leading bits are fixed.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `addr` lies in this network. An IPv4 address that arrives as
    /// IPv4-mapped IPv6 (`::ffff:10.1.2.3`, as a dual-stack socket reports
    /// it) matches an IPv4 network, so a proxy is trusted however it connects.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, addr.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask_u32(self.prefix_len);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask_u128(self.prefix_len);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask_u32(prefix_len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix_len)).unwrap_or(0)
}

fn mask_u128(prefix_len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix_len)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = String;

    /// The error completes the sentence `"text" …`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr =
            addr.parse().map_err(|_| "is not an IP address or network (such as 10.0.0.0/8 or fd00::/8)".to_owned())?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            None => bits,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|len| *len <= bits)
                .ok_or_else(|| format!("has a prefix length that is not between 0 and {bits}"))?,
        };
        let masked = match network {
            IpAddr::V4(ip) => IpAddr::from((u32::from(ip) & mask_u32(prefix_len)).to_be_bytes()),
            IpAddr::V6(ip) => IpAddr::from((u128::from(ip) & mask_u128(prefix_len)).to_be_bytes()),
        };
        // A host part after the network is almost always a typo for a
        // narrower or wider network; trusting the wrong one is a security
        // hole, so refuse to guess.
        if masked != network {
            return Err(format!("has host bits set; the network is {masked}/{prefix_len}"));
        }
        Ok(Cidr { network, prefix_len })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

crate::value::text_value!(Cidr);

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn contains_ipv4() {
        let net = cidr("10.0.0.0/8");
        assert!(net.contains(ip("10.255.1.2")));
        assert!(!net.contains(ip("11.0.0.0")));
        assert!(net.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped IPv6 counts as IPv4");
        assert!(!net.contains(ip("::1")));
        assert!(cidr("0.0.0.0/0").contains(ip("1.2.3.4")));
    }

    #[test]
    fn contains_ipv6() {
        let net = cidr("fd00::/8");
        assert!(net.contains(ip("fd12::1")));
        assert!(!net.contains(ip("fe80::1")));
        assert!(!net.contains(ip("10.0.0.1")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
    }

    #[test]
    fn bare_address_is_a_single_host() {
        assert_eq!(cidr("127.0.0.1").prefix_len(), 32);
        assert_eq!(cidr("::1").prefix_len(), 128);
        assert!(cidr("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!cidr("127.0.0.1").contains(ip("127.0.0.2")));
        assert_eq!(cidr("192.168.1.0/24").to_string(), "192.168.1.0/24");
    }

    #[test]
    fn rejects_malformed_networks() {
        let check = |text: &str, why: &str| assert_eq!(text.parse::<Cidr>().unwrap_err(), why);
        check("10.0.0.0/33", "has a prefix length that is not between 0 and 32");
        check("::/129", "has a prefix length that is not between 0 and 128");
        check("10.0.0.0/x", "has a prefix length that is not between 0 and 32");
        check("10.1.2.3/8", "has host bits set; the network is 10.0.0.0/8");
        check("example.com", "is not an IP address or network (such as 10.0.0.0/8 or fd00::/8)");
        check("", "is not an IP address or network (such as 10.0.0.0/8 or fd00::/8)");
    }
}
