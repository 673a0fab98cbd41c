//! Values: what a match compares against and what a set holds.
//!
//! nft rewrites some values on their way into the kernel (a range that is
//! exactly a prefix comes back as the prefix; an anonymous set of intervals
//! comes back merged). The model keeps only the forms nft prints back, so a
//! ruleset read from the kernel compares equal to the one that was written:
//! [`Value::canonical_element`] and [`crate::Rhs::any_of`] produce them, and
//! [`crate::Ruleset::validate`] rejects the others.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The type of a set key, a map key or a match operand, named as nft names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DataType {
    /// `ifname`: an interface name; with the interval flag, `prefix*` wildcards.
    IfName,
    /// `ipv4_addr`
    Ipv4Addr,
    /// `ipv6_addr`
    Ipv6Addr,
    /// `inet_proto`: an IP protocol number.
    InetProto,
    /// `inet_service`: a TCP/UDP/SCTP port.
    InetService,
    /// `icmp_type`
    IcmpType,
    /// `icmp_code`
    IcmpCode,
    /// `icmpv6_type`
    Icmpv6Type,
    /// `icmpv6_code`
    Icmpv6Code,
    /// `ct_state`: a bitmask of connection-tracking states.
    CtState,
    /// `mark`: a packet mark.
    Mark,
    /// `a . b . c`: a concatenation of the above.
    Concat(Vec<DataType>),
}

impl DataType {
    /// The name nft uses for a single (not concatenated) type.
    pub fn nft_name(&self) -> Option<&'static str> {
        Some(match self {
            DataType::IfName => "ifname",
            DataType::Ipv4Addr => "ipv4_addr",
            DataType::Ipv6Addr => "ipv6_addr",
            DataType::InetProto => "inet_proto",
            DataType::InetService => "inet_service",
            DataType::IcmpType => "icmp_type",
            DataType::IcmpCode => "icmp_code",
            DataType::Icmpv6Type => "icmpv6_type",
            DataType::Icmpv6Code => "icmpv6_code",
            DataType::CtState => "ct_state",
            DataType::Mark => "mark",
            DataType::Concat(_) => return None,
        })
    }

    /// The single type nft calls `name`.
    pub fn from_nft_name(name: &str) -> Option<DataType> {
        Some(match name {
            "ifname" => DataType::IfName,
            "ipv4_addr" => DataType::Ipv4Addr,
            "ipv6_addr" => DataType::Ipv6Addr,
            "inet_proto" => DataType::InetProto,
            "inet_service" => DataType::InetService,
            "icmp_type" => DataType::IcmpType,
            "icmp_code" => DataType::IcmpCode,
            "icmpv6_type" => DataType::Icmpv6Type,
            "icmpv6_code" => DataType::Icmpv6Code,
            "ct_state" => DataType::CtState,
            "mark" => DataType::Mark,
            _ => return None,
        })
    }

    /// The largest integer a value of this type can hold, for integer types.
    pub(crate) fn int_max(&self) -> Option<u32> {
        match self {
            DataType::InetProto
            | DataType::IcmpType
            | DataType::IcmpCode
            | DataType::Icmpv6Type
            | DataType::Icmpv6Code => Some(u8::MAX.into()),
            DataType::InetService => Some(u16::MAX.into()),
            DataType::Mark => Some(u32::MAX),
            _ => None,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Concat(parts) => {
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" . ")?;
                    }
                    write!(f, "{part}")?;
                }
                Ok(())
            }
            single => f.write_str(single.nft_name().unwrap_or("?")),
        }
    }
}

/// Connection-tracking states, as the bitmask `ct state` tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CtState(pub u8);

impl CtState {
    pub const INVALID: CtState = CtState(1);
    pub const ESTABLISHED: CtState = CtState(2);
    pub const RELATED: CtState = CtState(4);
    pub const NEW: CtState = CtState(8);
    pub const UNTRACKED: CtState = CtState(64);

    /// Every state bit with its nft name, in the order nft prints them.
    pub const NAMES: [(CtState, &'static str); 5] = [
        (CtState::INVALID, "invalid"),
        (CtState::ESTABLISHED, "established"),
        (CtState::RELATED, "related"),
        (CtState::NEW, "new"),
        (CtState::UNTRACKED, "untracked"),
    ];

    /// Whether only known state bits are set, and at least one.
    pub fn is_valid(self) -> bool {
        let known = CtState::NAMES.iter().fold(0u8, |acc, (s, _)| acc | s.0);
        self.0 != 0 && self.0 & !known == 0
    }
}

impl std::ops::BitOr for CtState {
    type Output = CtState;
    fn bitor(self, rhs: CtState) -> CtState {
        CtState(self.0 | rhs.0)
    }
}

/// A value in a match, a set or a map key.
///
/// Which variants fit which [`DataType`] is checked by validation:
/// `Name` for `ifname`; `Net` and `AddrRange` for addresses; `Int` and
/// `Range` for protocols, ports, ICMP types/codes and marks; `CtState` for
/// `ct_state`; `Concat` for concatenations.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    /// An interface name; a trailing `*` makes it a prefix wildcard.
    Name(String),
    /// An address (full-length prefix) or a prefix, host bits clear.
    Net(IpNet),
    /// An inclusive address range.
    AddrRange(IpAddr, IpAddr),
    /// An integer: protocol number, port, ICMP type or code, mark.
    Int(u32),
    /// An inclusive integer range, e.g. ports `1000-2000`.
    Range(u32, u32),
    /// A set of connection-tracking states.
    CtState(CtState),
    /// One value per part of a concatenated type.
    Concat(Vec<Value>),
}

impl Value {
    /// An interface name (`eth0`) or wildcard (`cali*`).
    pub fn name(name: impl Into<String>) -> Value {
        Value::Name(name.into())
    }

    /// A single address.
    pub fn addr(addr: impl Into<IpAddr>) -> Value {
        Value::Net(IpNet::from(addr.into()))
    }

    /// A prefix; host bits are cleared.
    pub fn net(net: impl Into<IpNet>) -> Value {
        Value::Net(net.into().trunc())
    }

    /// A port (or any integer).
    pub fn port(port: u16) -> Value {
        Value::Int(port.into())
    }

    /// An inclusive port range.
    pub fn ports(first: u16, last: u16) -> Value {
        Value::Range(first.into(), last.into())
    }

    /// Whether this value covers more than one point (a prefix, a range, a
    /// wildcard): such values need a set with the interval flag, and make nft
    /// merge the anonymous set they are in.
    pub fn is_interval(&self) -> bool {
        match self {
            Value::Net(net) => net.prefix_len() < net.max_prefix_len(),
            Value::AddrRange(..) | Value::Range(..) => true,
            Value::Name(name) => name.ends_with('*'),
            Value::Int(_) | Value::CtState(_) => false,
            Value::Concat(parts) => parts.iter().any(Value::is_interval),
        }
    }

    /// Whether this is, or contains, an interface-name wildcard.
    pub fn has_wildcard(&self) -> bool {
        match self {
            Value::Name(name) => name.ends_with('*'),
            Value::Concat(parts) => parts.iter().any(Value::has_wildcard),
            _ => false,
        }
    }

    /// The form nft prints this value in when it is a set element: a range
    /// that is one point becomes that point, an address range that is
    /// exactly a prefix becomes the prefix. Other values are unchanged.
    pub fn canonical_element(&self) -> Value {
        match self {
            Value::Range(lo, hi) if lo == hi => Value::Int(*lo),
            Value::AddrRange(lo, hi) => match Interval::of(self) {
                Some(interval) => interval.to_value().unwrap_or_else(|| self.clone()),
                None => Value::AddrRange(*lo, *hi),
            },
            Value::Concat(parts) => {
                Value::Concat(parts.iter().map(Value::canonical_element).collect())
            }
            other => other.clone(),
        }
    }
}

impl From<IpNet> for Value {
    fn from(net: IpNet) -> Value {
        Value::net(net)
    }
}

impl From<IpAddr> for Value {
    fn from(addr: IpAddr) -> Value {
        Value::addr(addr)
    }
}

impl From<Ipv4Addr> for Value {
    fn from(addr: Ipv4Addr) -> Value {
        Value::addr(addr)
    }
}

impl From<Ipv6Addr> for Value {
    fn from(addr: Ipv6Addr) -> Value {
        Value::addr(addr)
    }
}

impl From<CtState> for Value {
    fn from(state: CtState) -> Value {
        Value::CtState(state)
    }
}

/// The kinds of value nft can merge as intervals, with their width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum IntervalKind {
    V4,
    V6,
    Int,
    /// Interface names: 16 bytes (IFNAMSIZ), zero padded, big endian.
    Name,
}

/// A closed interval `[lo, hi]` of one kind, in a common integer space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Interval {
    pub kind: IntervalKind,
    pub lo: u128,
    pub hi: u128,
}

const IFNAMSIZ: usize = 16;

fn name_bytes(name: &str, fill: u8) -> Option<u128> {
    let bytes = name.as_bytes();
    if bytes.len() > IFNAMSIZ {
        return None;
    }
    let mut buf = [fill; IFNAMSIZ];
    buf[..bytes.len()].copy_from_slice(bytes);
    Some(u128::from_be_bytes(buf))
}

impl Interval {
    /// The interval a value covers, for values nft can merge.
    pub fn of(value: &Value) -> Option<Interval> {
        Some(match value {
            Value::Net(IpNet::V4(net)) => Interval {
                kind: IntervalKind::V4,
                lo: u32::from(net.network()).into(),
                hi: u32::from(net.broadcast()).into(),
            },
            Value::Net(IpNet::V6(net)) => Interval {
                kind: IntervalKind::V6,
                lo: u128::from(net.network()),
                hi: u128::from(net.broadcast()),
            },
            Value::AddrRange(IpAddr::V4(lo), IpAddr::V4(hi)) => Interval {
                kind: IntervalKind::V4,
                lo: u32::from(*lo).into(),
                hi: u32::from(*hi).into(),
            },
            Value::AddrRange(IpAddr::V6(lo), IpAddr::V6(hi)) => Interval {
                kind: IntervalKind::V6,
                lo: u128::from(*lo),
                hi: u128::from(*hi),
            },
            Value::Int(n) => Interval {
                kind: IntervalKind::Int,
                lo: (*n).into(),
                hi: (*n).into(),
            },
            Value::Range(lo, hi) => Interval {
                kind: IntervalKind::Int,
                lo: (*lo).into(),
                hi: (*hi).into(),
            },
            Value::Name(name) => match name.strip_suffix('*') {
                Some(prefix) => Interval {
                    kind: IntervalKind::Name,
                    lo: name_bytes(prefix, 0)?,
                    hi: name_bytes(prefix, 0xff)?,
                },
                None => {
                    let exact = name_bytes(name, 0)?;
                    Interval {
                        kind: IntervalKind::Name,
                        lo: exact,
                        hi: exact,
                    }
                }
            },
            _ => return None,
        })
    }

    /// The value nft prints for this interval, if it has a printable form.
    pub fn to_value(self) -> Option<Value> {
        match self.kind {
            IntervalKind::Int => {
                let lo = u32::try_from(self.lo).ok()?;
                let hi = u32::try_from(self.hi).ok()?;
                Some(if lo == hi {
                    Value::Int(lo)
                } else {
                    Value::Range(lo, hi)
                })
            }
            IntervalKind::V4 => {
                let lo = u32::try_from(self.lo).ok()?;
                let hi = u32::try_from(self.hi).ok()?;
                let (lo_addr, hi_addr) = (Ipv4Addr::from(lo), Ipv4Addr::from(hi));
                Some(match prefix_len(self.lo, self.hi, 32) {
                    Some(len) => Value::Net(IpNet::V4(Ipv4Net::new(lo_addr, len).ok()?)),
                    None => Value::AddrRange(lo_addr.into(), hi_addr.into()),
                })
            }
            IntervalKind::V6 => {
                let (lo_addr, hi_addr) = (Ipv6Addr::from(self.lo), Ipv6Addr::from(self.hi));
                Some(match prefix_len(self.lo, self.hi, 128) {
                    Some(len) => Value::Net(IpNet::V6(Ipv6Net::new(lo_addr, len).ok()?)),
                    None => Value::AddrRange(lo_addr.into(), hi_addr.into()),
                })
            }
            IntervalKind::Name => {
                let lo = self.lo.to_be_bytes();
                let hi = self.hi.to_be_bytes();
                if self.lo == self.hi {
                    let end = lo.iter().position(|b| *b == 0).unwrap_or(IFNAMSIZ);
                    if lo[end..].iter().any(|b| *b != 0) {
                        return None;
                    }
                    return String::from_utf8(lo[..end].to_vec()).ok().map(Value::Name);
                }
                // A wildcard: a common prefix, then zeros in `lo` and 0xff in `hi`.
                let common = lo.iter().zip(hi.iter()).take_while(|(a, b)| a == b).count();
                if lo[common..].iter().any(|b| *b != 0) || hi[common..].iter().any(|b| *b != 0xff) {
                    return None;
                }
                if lo[..common].contains(&0) {
                    return None;
                }
                let prefix = String::from_utf8(lo[..common].to_vec()).ok()?;
                Some(Value::Name(format!("{prefix}*")))
            }
        }
    }
}

/// The prefix length of `[lo, hi]` if it is exactly one prefix of a
/// `bits`-wide address.
fn prefix_len(lo: u128, hi: u128, bits: u8) -> Option<u8> {
    let size = hi.checked_sub(lo)?.checked_add(1);
    let host_bits = match size {
        // The whole 128-bit space.
        None => 128,
        Some(size) if size.is_power_of_two() => size.trailing_zeros(),
        Some(_) => return None,
    };
    if host_bits > bits.into() {
        return None;
    }
    if host_bits < 128 && lo & ((1u128 << host_bits) - 1) != 0 {
        return None;
    }
    Some(bits - host_bits as u8)
}

/// What nft makes of an anonymous set it is given: merged intervals when
/// any element is an interval (overlapping and adjacent ones joined), the
/// elements as they are otherwise. Fails when a merged interval has no
/// printable form (interface names that are neither exact nor a wildcard).
pub(crate) fn merge_anonymous(elements: &BTreeSet<Value>) -> Result<BTreeSet<Value>, String> {
    let canonical: BTreeSet<Value> = elements.iter().map(Value::canonical_element).collect();
    let concat = canonical.iter().any(|v| matches!(v, Value::Concat(_)));
    if concat || !canonical.iter().any(Value::is_interval) {
        return Ok(canonical);
    }
    let mut intervals = Vec::with_capacity(canonical.len());
    for value in &canonical {
        match Interval::of(value) {
            Some(interval) => intervals.push(interval),
            None => return Err(format!("`{value}` cannot be part of an interval set")),
        }
    }
    intervals.sort();
    let mut merged: Vec<Interval> = Vec::with_capacity(intervals.len());
    for next in intervals {
        match merged.last_mut() {
            Some(last) if last.kind == next.kind && next.lo <= last.hi.saturating_add(1) => {
                last.hi = last.hi.max(next.hi);
            }
            _ => merged.push(next),
        }
    }
    let mut out = BTreeSet::new();
    for interval in merged {
        match interval.to_value() {
            Some(value) => {
                out.insert(value);
            }
            None => {
                return Err(
                    "interface names in an anonymous set overlap or are adjacent in a way nft \
                     cannot print back"
                        .to_string(),
                );
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Value {
        Value::Net(s.parse().unwrap())
    }

    #[test]
    fn canonical_element_turns_ranges_into_points_and_prefixes() {
        let cases = [
            (Value::Range(80, 80), Value::Int(80)),
            (Value::Range(80, 81), Value::Range(80, 81)),
            (
                Value::AddrRange("10.0.0.0".parse().unwrap(), "10.0.0.255".parse().unwrap()),
                v4("10.0.0.0/24"),
            ),
            (
                Value::AddrRange("10.0.2.0".parse().unwrap(), "10.0.2.0".parse().unwrap()),
                v4("10.0.2.0/32"),
            ),
            (
                Value::AddrRange("10.0.0.1".parse().unwrap(), "10.0.0.5".parse().unwrap()),
                Value::AddrRange("10.0.0.1".parse().unwrap(), "10.0.0.5".parse().unwrap()),
            ),
            (
                Value::AddrRange(
                    "::".parse().unwrap(),
                    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
                ),
                Value::Net("::/0".parse().unwrap()),
            ),
            (
                Value::Concat(vec![Value::Range(5, 5), Value::name("eth0")]),
                Value::Concat(vec![Value::Int(5), Value::name("eth0")]),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(input.canonical_element(), want, "{input:?}");
        }
    }

    #[test]
    fn anonymous_sets_merge_like_nft() {
        let set = |vals: Vec<Value>| vals.into_iter().collect::<BTreeSet<_>>();
        let cases = [
            // Adjacent prefixes become one prefix.
            (
                set(vec![v4("10.0.0.0/25"), v4("10.0.0.128/25")]),
                set(vec![v4("10.0.0.0/24")]),
            ),
            // A prefix and an adjacent half-prefix become a range.
            (
                set(vec![v4("10.0.0.0/24"), v4("10.0.1.0/25")]),
                set(vec![Value::AddrRange(
                    "10.0.0.0".parse().unwrap(),
                    "10.0.1.127".parse().unwrap(),
                )]),
            ),
            // A point inside a prefix disappears.
            (
                set(vec![v4("10.0.0.0/24"), v4("10.0.0.1/32")]),
                set(vec![v4("10.0.0.0/24")]),
            ),
            // Points only: nothing is merged, even when adjacent.
            (
                set(vec![Value::Int(80), Value::Int(81)]),
                set(vec![Value::Int(80), Value::Int(81)]),
            ),
            // Once there is a range, adjacent points merge too.
            (
                set(vec![Value::Int(80), Value::Int(81), Value::Range(90, 95)]),
                set(vec![Value::Range(80, 81), Value::Range(90, 95)]),
            ),
            (
                set(vec![Value::Range(80, 90), Value::Int(91)]),
                set(vec![Value::Range(80, 91)]),
            ),
            // A wildcard swallows the names it covers.
            (
                set(vec![Value::name("a*"), Value::name("ab")]),
                set(vec![Value::name("a*")]),
            ),
            (
                set(vec![Value::name("cali*"), Value::name("eth0")]),
                set(vec![Value::name("cali*"), Value::name("eth0")]),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(merge_anonymous(&input).unwrap(), want, "{input:?}");
        }
    }

    #[test]
    fn adjacent_wildcards_cannot_be_printed_back() {
        let input: BTreeSet<Value> = [Value::name("a*"), Value::name("b*")].into();
        assert!(merge_anonymous(&input).is_err());
    }

    #[test]
    fn prefix_len_only_for_aligned_power_of_two_blocks() {
        assert_eq!(prefix_len(0, u32::MAX.into(), 32), Some(0));
        assert_eq!(prefix_len(256, 511, 32), Some(24));
        assert_eq!(prefix_len(0, 511, 32), Some(23));
        assert_eq!(prefix_len(256, 256, 32), Some(32));
        assert_eq!(prefix_len(255, 510, 32), None);
        assert_eq!(prefix_len(0, u128::MAX, 128), Some(0));
        assert_eq!(prefix_len(1, 5, 32), None);
    }
}
