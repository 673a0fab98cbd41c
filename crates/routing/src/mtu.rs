//! The host MTU, found as Calico's agent finds it: the smallest MTU among
//! the interfaces that are up and whose names match `mtuIfacePattern`;
//! 1460 (the smallest of the common clouds) when none match. Tunnel
//! devices take it less their overhead ([`crate::Settings`]).

use regex::Regex;

/// Calico's default `mtuIfacePattern`: names of physical uplinks.
pub const DEFAULT_MTU_IFACE_PATTERN: &str = r"^((en|wl|ww|sl|ib)[Pcopsvx].*|(eth|wlan|wwan).*)";

/// The host MTU when no interface matches.
pub const FALLBACK_HOST_MTU: u32 = 1460;

/// One interface as MTU detection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface<'a> {
    pub name: &'a str,
    pub mtu: u32,
    pub up: bool,
}

/// The smallest MTU of the matching interfaces that are up.
pub fn host_mtu<'a>(interfaces: impl IntoIterator<Item = Interface<'a>>, pattern: &Regex) -> u32 {
    interfaces
        .into_iter()
        .filter(|i| i.up && i.mtu > 0 && pattern.is_match(i.name))
        .map(|i| i.mtu)
        .min()
        .unwrap_or(FALLBACK_HOST_MTU)
}

/// The default pattern, compiled.
pub fn default_pattern() -> Regex {
    Regex::new(DEFAULT_MTU_IFACE_PATTERN).expect("Calico's default pattern compiles")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, mtu: u32, up: bool) -> Interface<'_> {
        Interface { name, mtu, up }
    }

    #[test]
    fn smallest_matching_interface_that_is_up() {
        let pattern = default_pattern();
        let cases: &[(&[Interface<'_>], u32)] = &[
            (
                &[iface("eth0", 1500, true), iface("ens3", 9000, true)],
                1500,
            ),
            (
                &[iface("eth0", 1500, false), iface("ens3", 9000, true)],
                9000,
            ),
            // Loopback, bridges, veths and Calico's own devices never count.
            (
                &[
                    iface("lo", 65536, true),
                    iface("vxlan.calico", 1450, true),
                    iface("cali12345", 1400, true),
                    iface("docker0", 1400, true),
                    iface("enp0s3", 1500, true),
                ],
                1500,
            ),
            (&[iface("lo", 65536, true)], FALLBACK_HOST_MTU),
            (&[], FALLBACK_HOST_MTU),
            (
                &[iface("wlan0", 1400, true), iface("eth1", 1450, true)],
                1400,
            ),
        ];
        for (interfaces, expected) in cases {
            assert_eq!(
                host_mtu(interfaces.iter().cloned(), &pattern),
                *expected,
                "{interfaces:?}"
            );
        }
    }
}
