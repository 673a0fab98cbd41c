//! Address parsing with Calico's rules: a CIDR or a bare IP (meaning /32 or
//! /128), and "strictly masked" networks.

use std::net::IpAddr;

use ipnet::IpNet;

/// Parses `a.b.c.d/n`, `a:b::/n` or a bare address. Returns the address as
/// written and the network it belongs to (host bits cleared).
pub fn parse_cidr_or_ip(s: &str) -> Option<(IpAddr, IpNet)> {
    if let Some((addr, len)) = s.split_once('/') {
        let addr: IpAddr = addr.parse().ok()?;
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let len: u8 = len.parse().ok()?;
        let net = IpNet::new(addr, len).ok()?;
        Some((addr, net.trunc()))
    } else {
        let addr: IpAddr = s.parse().ok()?;
        let len = if addr.is_ipv4() { 32 } else { 128 };
        Some((addr, IpNet::new(addr, len).ok()?))
    }
}

/// A CIDR that requires the `/len` part (Calico's `ParseCIDR`).
pub fn parse_cidr(s: &str) -> Option<(IpAddr, IpNet)> {
    if s.contains('/') {
        parse_cidr_or_ip(s)
    } else {
        None
    }
}

/// True when `s` parses and has no host bits set (`10.0.0.0/8`, `10.0.0.1`).
pub fn is_strict_network(s: &str) -> bool {
    parse_cidr_or_ip(s).is_some_and(|(addr, net)| addr == net.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_or_ip_forms() {
        let cases: &[(&str, Option<&str>, bool)] = &[
            ("10.0.0.0/8", Some("10.0.0.0/8"), true),
            ("10.1.2.3/8", Some("10.0.0.0/8"), false),
            ("10.1.2.3", Some("10.1.2.3/32"), true),
            ("fd00::/64", Some("fd00::/64"), true),
            ("fd00::1", Some("fd00::1/128"), true),
            ("10.0.0.0/33", None, false),
            ("10.0.0.0/", None, false),
            ("bogus", None, false),
        ];
        for (input, net, strict) in cases {
            let got = parse_cidr_or_ip(input).map(|(_, n)| n.to_string());
            assert_eq!(got.as_deref(), *net, "{input}");
            assert_eq!(is_strict_network(input), *strict, "{input}");
        }
        assert!(parse_cidr("10.0.0.1").is_none());
    }
}
