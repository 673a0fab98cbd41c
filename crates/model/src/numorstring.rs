//! Values Calico writes as "a number or a string": protocols, ports, AS
//! numbers, DSCP classes.
//!
//! Each keeps what the user wrote (a name stays a name) so that printing a
//! resource gives back the same YAML; helpers give the numeric meaning.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Calico's accepted protocol names, in the spelling its validator requires.
pub const PROTOCOL_NAMES: [&str; 6] = ["TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite"];

/// An IP protocol: a name (`"TCP"`) or a number (`6`).
///
/// As in Calico, a string holding only digits (`"6"`) is read as a number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Number(u8),
    Name(String),
}

impl Protocol {
    pub fn tcp() -> Self {
        Protocol::Name("TCP".into())
    }
    pub fn udp() -> Self {
        Protocol::Name("UDP".into())
    }

    /// The IANA protocol number, for numbers and for the names Calico knows
    /// (names matched case-insensitively).
    pub fn number(&self) -> Option<u8> {
        match self {
            Protocol::Number(n) => Some(*n),
            Protocol::Name(name) => match name.to_ascii_lowercase().as_str() {
                "tcp" => Some(6),
                "udp" => Some(17),
                "icmp" => Some(1),
                "icmpv6" => Some(58),
                "sctp" => Some(132),
                "udplite" => Some(136),
                _ => None,
            },
        }
    }

    /// Whether rules may match ports with this protocol (TCP, UDP, SCTP).
    pub fn supports_ports(&self) -> bool {
        matches!(self.number(), Some(6 | 17 | 132))
    }

    /// Whether this is ICMP or ICMPv6.
    pub fn is_icmp(&self) -> bool {
        matches!(self.number(), Some(1 | 58))
    }

    /// Whether a name is spelled exactly as Calico's validator requires.
    pub fn is_valid_name(&self) -> bool {
        match self {
            Protocol::Number(_) => true,
            Protocol::Name(n) => PROTOCOL_NAMES.contains(&n.as_str()),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Number(n) => write!(f, "{n}"),
            Protocol::Name(s) => f.write_str(s),
        }
    }
}

impl From<&str> for Protocol {
    fn from(s: &str) -> Self {
        match s.parse::<u8>() {
            Ok(n) if s.bytes().all(|b| b.is_ascii_digit()) => Protocol::Number(n),
            _ => Protocol::Name(s.to_string()),
        }
    }
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Protocol::Number(n) => s.serialize_u8(*n),
            Protocol::Name(n) => s.serialize_str(n),
        }
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Uint8OrStringVisitor("a protocol name or number 0-255"))
            .map(|v| match v {
                Uint8OrString::Num(n) => Protocol::Number(n),
                Uint8OrString::Str(s) => Protocol::Name(s),
            })
    }
}

/// A DSCP value: a number (`46`) or a class name (`"EF"`, `"AF11"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dscp {
    Number(u8),
    Name(String),
}

const DSCP_CLASSES: [(&str, u8); 21] = [
    ("DF", 0),
    ("EF", 46),
    ("AF11", 10),
    ("AF12", 12),
    ("AF13", 14),
    ("AF21", 18),
    ("AF22", 20),
    ("AF23", 22),
    ("AF31", 26),
    ("AF32", 28),
    ("AF33", 30),
    ("AF41", 34),
    ("AF42", 36),
    ("AF43", 38),
    ("CS0", 0),
    ("CS1", 8),
    ("CS2", 16),
    ("CS3", 24),
    ("CS4", 32),
    ("CS5", 40),
    ("CS6", 48),
];

impl Dscp {
    /// The 6-bit value, if the number is in range or the class name is known.
    pub fn value(&self) -> Option<u8> {
        match self {
            Dscp::Number(n) if *n <= 63 => Some(*n),
            Dscp::Number(_) => None,
            Dscp::Name(name) => {
                let upper = name.trim().to_ascii_uppercase();
                DSCP_CLASSES
                    .iter()
                    .find(|(class, _)| *class == upper)
                    .map(|(_, v)| *v)
            }
        }
    }
}

impl Serialize for Dscp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Dscp::Number(n) => s.serialize_u8(*n),
            Dscp::Name(n) => s.serialize_str(n),
        }
    }
}

impl<'de> Deserialize<'de> for Dscp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Uint8OrStringVisitor("a DSCP number 0-63 or class name"))
            .map(|v| match v {
                Uint8OrString::Num(n) => Dscp::Number(n),
                Uint8OrString::Str(s) => Dscp::Name(s),
            })
    }
}

enum Uint8OrString {
    Num(u8),
    Str(String),
}

struct Uint8OrStringVisitor(&'static str);

impl Visitor<'_> for Uint8OrStringVisitor {
    type Value = Uint8OrString;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        u8::try_from(v)
            .map(Uint8OrString::Num)
            .map_err(|_| E::custom(format!("{v} is out of range 0-255")))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        u8::try_from(v)
            .map(Uint8OrString::Num)
            .map_err(|_| E::custom(format!("{v} is out of range 0-255")))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = v.parse::<u8>() {
                return Ok(Uint8OrString::Num(n));
            }
        }
        Ok(Uint8OrString::Str(v.to_string()))
    }
}

/// A port match: a single port or range (`80`, `"8000:8080"`), or the name
/// of a port declared on the endpoint (`"http"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Port {
    /// `min..=max`; a single port has `min == max`.
    Range {
        min: u16,
        max: u16,
    },
    Named(String),
}

/// Why a port string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("invalid port format ({0})")]
    Number(String),
    #[error(
        "minimum port number ({min}) is greater than maximum port number ({max}) in port range"
    )]
    Reversed { min: u16, max: u16 },
    #[error("invalid name for named port ({0})")]
    Name(String),
}

impl Port {
    pub fn single(port: u16) -> Self {
        Port::Range {
            min: port,
            max: port,
        }
    }

    /// Parses Calico's string forms: digits, `min:max`, or a port name of
    /// 1-128 characters from `[a-zA-Z0-9_.-]`.
    pub fn parse(s: &str) -> Result<Port, PortError> {
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if digits(s) {
            return s
                .parse::<u16>()
                .map(Port::single)
                .map_err(|_| PortError::Number(s.to_string()));
        }
        if let Some((lo, hi)) = s.split_once(':') {
            if digits(lo) && digits(hi) {
                let min = lo.parse::<u16>().map_err(|_| PortError::Number(s.into()))?;
                let max = hi.parse::<u16>().map_err(|_| PortError::Number(s.into()))?;
                if min > max {
                    return Err(PortError::Reversed { min, max });
                }
                return Ok(Port::Range { min, max });
            }
        }
        if is_port_name(s) {
            Ok(Port::Named(s.to_string()))
        } else {
            Err(PortError::Name(s.to_string()))
        }
    }
}

/// Calico's rule for a port name: 1-128 characters from `[a-zA-Z0-9_.-]`.
pub fn is_port_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Port::Range { min, max } if min == max => write!(f, "{min}"),
            Port::Range { min, max } => write!(f, "{min}:{max}"),
            Port::Named(n) => f.write_str(n),
        }
    }
}

impl Serialize for Port {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Port::Range { min, max } if min == max => s.serialize_u16(*min),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number, a \"min:max\" range or a port name")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Port, E> {
                u16::try_from(v)
                    .map(Port::single)
                    .map_err(|_| E::custom(format!("port {v} is out of range 0-65535")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Port, E> {
                u16::try_from(v)
                    .map(Port::single)
                    .map_err(|_| E::custom(format!("port {v} is out of range 0-65535")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Port, E> {
                Port::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A BGP AS number. Accepts a number or the dotted `"<high>.<low>"` form;
/// always written back as a plain number, as Calico does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AsNumber(pub u32);

impl AsNumber {
    pub fn parse(s: &str) -> Option<AsNumber> {
        if let Ok(n) = s.parse::<u32>() {
            return Some(AsNumber(n));
        }
        let (hi, lo) = s.split_once('.')?;
        let hi = hi.parse::<u16>().ok()?;
        let lo = lo.parse::<u16>().ok()?;
        Some(AsNumber((u32::from(hi) << 16) + u32::from(lo)))
    }
}

impl fmt::Display for AsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for AsNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = AsNumber;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an AS number (e.g. 64512 or \"1.10\")")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<AsNumber, E> {
                u32::try_from(v)
                    .map(AsNumber)
                    .map_err(|_| E::custom(format!("AS number {v} is out of range")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<AsNumber, E> {
                u32::try_from(v)
                    .map(AsNumber)
                    .map_err(|_| E::custom(format!("AS number {v} is out of range")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AsNumber, E> {
                AsNumber::parse(v)
                    .ok_or_else(|| E::custom(format!("invalid AS Number format ({v})")))
            }
        }
        d.deserialize_any(V)
    }
}

/// Kubernetes' IntOrString (used by Kubernetes NetworkPolicy ports).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i32),
    String(String),
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(i) => write!(f, "{i}"),
            IntOrString::String(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_json_forms() {
        let cases: &[(&str, Result<Port, ()>, &str)] = &[
            ("80", Ok(Port::single(80)), "80"),
            ("\"80\"", Ok(Port::single(80)), "80"),
            (
                "\"8000:8080\"",
                Ok(Port::Range {
                    min: 8000,
                    max: 8080,
                }),
                "\"8000:8080\"",
            ),
            ("\"http\"", Ok(Port::Named("http".into())), "\"http\""),
            ("\"9:8\"", Err(()), ""),
            ("\"bad name!\"", Err(()), ""),
            ("70000", Err(()), ""),
            ("\"70000\"", Err(()), ""),
        ];
        for (input, want, out) in cases {
            let got: Result<Port, _> = serde_json::from_str(input);
            match want {
                Ok(p) => {
                    let got = got.unwrap_or_else(|e| panic!("{input}: {e}"));
                    assert_eq!(&got, p, "{input}");
                    assert_eq!(serde_json::to_string(&got).unwrap(), *out, "{input}");
                }
                Err(()) => assert!(got.is_err(), "{input} should fail, got {got:?}"),
            }
        }
    }

    #[test]
    fn protocol_json_forms() {
        let cases: &[(&str, Protocol, &str, Option<u8>)] = &[
            ("\"TCP\"", Protocol::tcp(), "\"TCP\"", Some(6)),
            ("6", Protocol::Number(6), "6", Some(6)),
            ("\"17\"", Protocol::Number(17), "17", Some(17)),
            (
                "\"ICMPv6\"",
                Protocol::Name("ICMPv6".into()),
                "\"ICMPv6\"",
                Some(58),
            ),
            ("\"gre\"", Protocol::Name("gre".into()), "\"gre\"", None),
        ];
        for (input, want, out, num) in cases {
            let got: Protocol = serde_json::from_str(input).unwrap();
            assert_eq!(&got, want);
            assert_eq!(serde_json::to_string(&got).unwrap(), *out);
            assert_eq!(got.number(), *num);
        }
        assert!(serde_json::from_str::<Protocol>("256").is_err());
        assert!(Protocol::Name("udp".into()).supports_ports());
        assert!(!Protocol::Name("udp".into()).is_valid_name());
        assert!(!Protocol::Name("ICMP".into()).supports_ports());
    }

    #[test]
    fn as_number_forms() {
        let n: AsNumber = serde_json::from_str("64512").unwrap();
        assert_eq!(n, AsNumber(64512));
        let n: AsNumber = serde_json::from_str("\"1.10\"").unwrap();
        assert_eq!(n, AsNumber(65546));
        assert_eq!(serde_json::to_string(&n).unwrap(), "65546");
        assert!(serde_json::from_str::<AsNumber>("\"x.1\"").is_err());
    }

    #[test]
    fn dscp_values() {
        assert_eq!(Dscp::Name("af11".into()).value(), Some(10));
        assert_eq!(Dscp::Number(46).value(), Some(46));
        assert_eq!(Dscp::Number(64).value(), None);
        assert_eq!(Dscp::Name("XX".into()).value(), None);
    }
}
