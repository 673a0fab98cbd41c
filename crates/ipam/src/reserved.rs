//! Addresses that IPReservations take out of use: the one filter that both
//! allocation and the usage reports consult, so `calicoctl ipam show` never
//! counts as free an address the allocator would refuse.
//!
//! Reservations may overlap and nest; they are merged into sorted,
//! disjoint integer ranges per family, so every question is a binary
//! search and every count a set operation.

use std::net::IpAddr;

use calico_model::IpReservation;
use ipnet::IpNet;

use crate::cidr::{addr_to_int, net_range};

/// An entry of an IPReservation that is neither a CIDR nor an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedReservation {
    /// The IPReservation's name.
    pub reservation: String,
    /// The entry as written.
    pub cidr: String,
}

/// The union of every reserved CIDR.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reservations {
    v4: Vec<(u128, u128)>,
    v6: Vec<(u128, u128)>,
}

impl Reservations {
    /// No reservations.
    pub fn none() -> Reservations {
        Reservations::default()
    }

    pub fn new(cidrs: impl IntoIterator<Item = IpNet>) -> Reservations {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for cidr in cidrs {
            let range = net_range(&cidr.trunc());
            if cidr.addr().is_ipv4() {
                v4.push(range);
            } else {
                v6.push(range);
            }
        }
        Reservations {
            v4: merge(v4),
            v6: merge(v6),
        }
    }

    /// The reservations' CIDRs (or bare addresses), with the entries that
    /// parse as neither returned apart so the caller can log them; Calico
    /// skips those too.
    pub fn from_resources(
        resources: &[IpReservation],
    ) -> (Reservations, Vec<MalformedReservation>) {
        let mut cidrs = Vec::new();
        let mut malformed = Vec::new();
        for r in resources {
            for entry in &r.spec.reserved_cidrs {
                let entry = entry.trim();
                if entry.is_empty() {
                    continue;
                }
                match calico_model::net::parse_cidr_or_ip(entry) {
                    Some((_, net)) => cidrs.push(net),
                    None => malformed.push(MalformedReservation {
                        reservation: r.metadata.name.clone(),
                        cidr: entry.to_owned(),
                    }),
                }
            }
        }
        (Reservations::new(cidrs), malformed)
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    fn ranges(&self, v4: bool) -> &[(u128, u128)] {
        if v4 { &self.v4 } else { &self.v6 }
    }

    /// Whether `addr` is reserved.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let ranges = self.ranges(addr.is_ipv4());
        let value = addr_to_int(addr);
        // The last range starting at or before the value is the only one
        // that can hold it (ranges are disjoint and sorted).
        let idx = ranges.partition_point(|&(start, _)| start <= value);
        idx > 0 && ranges[idx - 1].1 >= value
    }

    /// Whether every address of `net` is reserved.
    pub fn covers(&self, net: &IpNet) -> bool {
        let (start, end) = net_range(net);
        let ranges = self.ranges(net.addr().is_ipv4());
        let idx = ranges.partition_point(|&(s, _)| s <= start);
        // Merged ranges never touch, so one range must hold the whole net.
        idx > 0 && ranges[idx - 1].1 >= end
    }

    /// Whether any address of `net` is reserved.
    pub fn touches(&self, net: &IpNet) -> bool {
        self.count_in(net) > 0
    }

    /// How many addresses of `net` are reserved (saturating).
    pub fn count_in(&self, net: &IpNet) -> u128 {
        let (start, end) = net_range(net);
        let ranges = self.ranges(net.addr().is_ipv4());
        let first = ranges.partition_point(|&(_, e)| e < start);
        let mut total: u128 = 0;
        for &(s, e) in &ranges[first..] {
            if s > end {
                break;
            }
            let lo = s.max(start);
            let hi = e.min(end);
            total = total.saturating_add((hi - lo).saturating_add(1));
        }
        total
    }
}

/// Sorts ranges and merges overlapping or adjacent ones.
fn merge(mut ranges: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    ranges.sort_unstable();
    let mut merged: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        if let Some(last) = merged.last_mut() {
            if start <= last.1.saturating_add(1) {
                last.1 = last.1.max(end);
                continue;
            }
        }
        merged.push((start, end));
    }
    merged
}

#[cfg(test)]
mod tests {
    use calico_model::{IpReservationSpec, ObjectMeta};
    use proptest::prelude::*;

    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn nested_and_adjacent_reservations() {
        let r = Reservations::new([
            net("10.0.0.0/25"),
            net("10.0.0.5/32"),
            net("10.0.0.128/26"),
            net("fd00::/126"),
        ]);
        assert!(r.contains("10.0.0.5".parse().unwrap()));
        assert!(r.contains("10.0.0.191".parse().unwrap()));
        assert!(!r.contains("10.0.0.192".parse().unwrap()));
        assert!(r.covers(&net("10.0.0.64/26")));
        assert!(r.covers(&net("10.0.0.96/27")));
        assert!(
            !r.covers(&net("10.0.0.0/24")),
            "adjacent merge stops at .191"
        );
        assert_eq!(r.count_in(&net("10.0.0.0/24")), 192);
        assert!(r.touches(&net("10.0.0.0/24")));
        assert!(!r.touches(&net("10.0.1.0/24")));
        assert!(r.contains("fd00::3".parse().unwrap()));
        assert!(!r.contains("fd00::4".parse().unwrap()));
        assert!(
            !r.contains("0.0.0.3".parse().unwrap()),
            "families stay apart"
        );
    }

    #[test]
    fn malformed_entries_are_reported_not_applied() {
        let res = IpReservation {
            metadata: ObjectMeta::named("r1"),
            spec: IpReservationSpec {
                reserved_cidrs: vec![
                    "10.0.0.1".into(),
                    " bogus ".into(),
                    "".into(),
                    "10.1.0.0/30".into(),
                ],
            },
        };
        let (r, bad) = Reservations::from_resources(&[res]);
        assert_eq!(
            bad,
            vec![MalformedReservation {
                reservation: "r1".into(),
                cidr: "bogus".into()
            }]
        );
        assert!(r.contains("10.0.0.1".parse().unwrap()));
        assert_eq!(r.count_in(&net("10.1.0.0/24")), 4);
    }

    proptest! {
        /// The merged ranges answer exactly as a per-address check against
        /// the raw CIDRs would.
        #[test]
        fn agrees_with_brute_force(cidrs in prop::collection::vec((0u32..256, 24u8..=32), 0..6)) {
            let nets: Vec<IpNet> = cidrs
                .iter()
                .map(|&(host, len)| crate::cidr::make_net(IpAddr::V4((0x0a00_0000 | host).into()), len).unwrap())
                .collect();
            let r = Reservations::new(nets.clone());
            let block = net("10.0.0.0/24");
            let mut count = 0u128;
            for i in 0..256u32 {
                let addr = IpAddr::V4((0x0a00_0000 | i).into());
                let expected = nets.iter().any(|n| n.contains(&addr));
                prop_assert_eq!(r.contains(addr), expected);
                count += u128::from(expected);
            }
            prop_assert_eq!(r.count_in(&block), count);
            prop_assert_eq!(r.covers(&block), count == 256);
        }
    }
}
