//! UPDATE (RFC 4271 §4.3) with the path attributes Calico's peers use:
//! the RFC 4271 set, communities (RFC 1997), route reflection (RFC 4456),
//! MP_REACH/MP_UNREACH (RFC 4760), AS4_PATH/AS4_AGGREGATOR (RFC 6793) and
//! large communities (RFC 8092). Other attributes are kept as bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::reader::Reader;
use super::{DecodeError, EncodeError, Family, code, update_error};

/// The AS number written where a four-octet AS does not fit (RFC 6793).
pub const AS_TRANS: u16 = 23456;

/// Attribute flag bits.
pub mod attr_flags {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
    /// A well-known attribute.
    pub const WELL_KNOWN: u8 = TRANSITIVE;
    pub const OPTIONAL_TRANSITIVE: u8 = OPTIONAL | TRANSITIVE;
}

/// Attribute type codes.
pub mod attr_type {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MULTI_EXIT_DISC: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const ORIGINATOR_ID: u8 = 9;
    pub const CLUSTER_LIST: u8 = 10;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const LARGE_COMMUNITIES: u8 = 32;
}

/// ORIGIN values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Origin {
    #[default]
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentKind {
    Set = 1,
    Sequence = 2,
    ConfedSequence = 3,
    ConfedSet = 4,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AsSegment {
    pub kind: SegmentKind,
    pub asns: Vec<u32>,
}

/// An AS_PATH (or AS4_PATH); AS numbers are held four octets wide whatever
/// the width on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AsPath {
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    pub fn sequence(asns: impl IntoIterator<Item = u32>) -> AsPath {
        let asns: Vec<u32> = asns.into_iter().collect();
        if asns.is_empty() {
            return AsPath::default();
        }
        AsPath {
            segments: vec![AsSegment {
                kind: SegmentKind::Sequence,
                asns,
            }],
        }
    }

    /// The path length used by best-path selection: each AS in a sequence
    /// counts one, a set counts one, confederation segments count nothing
    /// (RFC 4271 §9.1.2.2, RFC 5065 §5.3).
    pub fn length(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentKind::Sequence => s.asns.len(),
                SegmentKind::Set => 1,
                SegmentKind::ConfedSequence | SegmentKind::ConfedSet => 0,
            })
            .sum()
    }

    /// The AS the route was learned from: the first AS of a leading sequence.
    pub fn first_as(&self) -> Option<u32> {
        match self.segments.first() {
            Some(AsSegment {
                kind: SegmentKind::Sequence,
                asns,
            }) => asns.first().copied(),
            _ => None,
        }
    }

    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// Prepends `asn` `count` times, starting a new sequence when the path
    /// starts with something else or the first sequence is full.
    pub fn prepend(&mut self, asn: u32, count: usize) {
        for _ in 0..count {
            match self.segments.first_mut() {
                Some(s) if s.kind == SegmentKind::Sequence && s.asns.len() < 255 => {
                    s.asns.insert(0, asn)
                }
                _ => self.segments.insert(
                    0,
                    AsSegment {
                        kind: SegmentKind::Sequence,
                        asns: vec![asn],
                    },
                ),
            }
        }
    }

    fn encode(&self, four_octet: bool, out: &mut Vec<u8>) {
        for segment in &self.segments {
            // A segment holds at most 255 ASes; longer ones are split.
            for chunk in segment.asns.chunks(255) {
                out.push(segment.kind as u8);
                out.push(chunk.len() as u8);
                for &asn in chunk {
                    if four_octet {
                        out.extend_from_slice(&asn.to_be_bytes());
                    } else {
                        let narrow = u16::try_from(asn).unwrap_or(AS_TRANS);
                        out.extend_from_slice(&narrow.to_be_bytes());
                    }
                }
            }
        }
    }

    fn decode(mut value: Reader<'_>, four_octet: bool) -> Option<AsPath> {
        let mut segments = Vec::new();
        while !value.is_empty() {
            let kind = match value.u8()? {
                1 => SegmentKind::Set,
                2 => SegmentKind::Sequence,
                3 => SegmentKind::ConfedSequence,
                4 => SegmentKind::ConfedSet,
                _ => return None,
            };
            let count = value.u8()?;
            if count == 0 {
                return None;
            }
            let mut asns = Vec::with_capacity(count as usize);
            for _ in 0..count {
                asns.push(if four_octet {
                    value.u32()?
                } else {
                    u32::from(value.u16()?)
                });
            }
            segments.push(AsSegment { kind, asns });
        }
        Some(AsPath { segments })
    }

    /// Whether every AS fits in two octets.
    pub fn is_two_octet(&self) -> bool {
        self.segments
            .iter()
            .all(|s| s.asns.iter().all(|&a| a <= u32::from(u16::MAX)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    pub global_admin: u32,
    pub local_1: u32,
    pub local_2: u32,
}

/// The NLRI of an MP_REACH or MP_UNREACH attribute: prefixes for the
/// unicast families, bytes for any other.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Nlri {
    Prefixes(Vec<IpNet>),
    Opaque(Vec<u8>),
}

impl Nlri {
    pub fn prefixes(&self) -> &[IpNet] {
        match self {
            Nlri::Prefixes(p) => p,
            Nlri::Opaque(_) => &[],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpReach {
    pub family: Family,
    /// The next hop field as sent: 4 bytes (IPv4), 16 (IPv6 global) or 32
    /// (global and link-local).
    pub next_hop: Vec<u8>,
    pub nlri: Nlri,
}

impl MpReach {
    /// The next hop as addresses: global, and link-local when present.
    pub fn next_hops(&self) -> Option<(IpAddr, Option<Ipv6Addr>)> {
        let nh = &self.next_hop;
        match nh.len() {
            4 => Some((IpAddr::from(<[u8; 4]>::try_from(&nh[..]).ok()?), None)),
            16 => Some((IpAddr::from(<[u8; 16]>::try_from(&nh[..]).ok()?), None)),
            32 => Some((
                IpAddr::from(<[u8; 16]>::try_from(&nh[..16]).ok()?),
                Some(Ipv6Addr::from(<[u8; 16]>::try_from(&nh[16..]).ok()?)),
            )),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    pub family: Family,
    pub nlri: Nlri,
}

/// A path attribute's value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AttributeValue {
    Origin(Origin),
    AsPath(AsPath),
    NextHop(Ipv4Addr),
    MultiExitDisc(u32),
    LocalPref(u32),
    AtomicAggregate,
    Aggregator {
        asn: u32,
        address: Ipv4Addr,
    },
    Communities(Vec<u32>),
    OriginatorId(Ipv4Addr),
    ClusterList(Vec<Ipv4Addr>),
    MpReach(MpReach),
    MpUnreach(MpUnreach),
    As4Path(AsPath),
    As4Aggregator {
        asn: u32,
        address: Ipv4Addr,
    },
    LargeCommunities(Vec<LargeCommunity>),
    /// An attribute this codec does not interpret.
    Unknown {
        type_code: u8,
        data: Vec<u8>,
    },
}

impl AttributeValue {
    pub fn type_code(&self) -> u8 {
        use attr_type::*;
        match self {
            AttributeValue::Origin(_) => ORIGIN,
            AttributeValue::AsPath(_) => AS_PATH,
            AttributeValue::NextHop(_) => NEXT_HOP,
            AttributeValue::MultiExitDisc(_) => MULTI_EXIT_DISC,
            AttributeValue::LocalPref(_) => LOCAL_PREF,
            AttributeValue::AtomicAggregate => ATOMIC_AGGREGATE,
            AttributeValue::Aggregator { .. } => AGGREGATOR,
            AttributeValue::Communities(_) => COMMUNITIES,
            AttributeValue::OriginatorId(_) => ORIGINATOR_ID,
            AttributeValue::ClusterList(_) => CLUSTER_LIST,
            AttributeValue::MpReach(_) => MP_REACH_NLRI,
            AttributeValue::MpUnreach(_) => MP_UNREACH_NLRI,
            AttributeValue::As4Path(_) => AS4_PATH,
            AttributeValue::As4Aggregator { .. } => AS4_AGGREGATOR,
            AttributeValue::LargeCommunities(_) => LARGE_COMMUNITIES,
            AttributeValue::Unknown { type_code, .. } => *type_code,
        }
    }

    /// The flags an attribute of this type is sent with.
    pub fn standard_flags(&self) -> u8 {
        match expected_flags(self.type_code()) {
            Some(flags) => flags,
            None => attr_flags::OPTIONAL_TRANSITIVE,
        }
    }

    fn encode(&self, four_octet: bool, out: &mut Vec<u8>) {
        match self {
            AttributeValue::Origin(o) => out.push(*o as u8),
            AttributeValue::AsPath(p) => p.encode(four_octet, out),
            AttributeValue::As4Path(p) => p.encode(true, out),
            AttributeValue::NextHop(ip) => out.extend_from_slice(&ip.octets()),
            AttributeValue::MultiExitDisc(v) | AttributeValue::LocalPref(v) => {
                out.extend_from_slice(&v.to_be_bytes())
            }
            AttributeValue::AtomicAggregate => {}
            AttributeValue::Aggregator { asn, address } => {
                if four_octet {
                    out.extend_from_slice(&asn.to_be_bytes());
                } else {
                    out.extend_from_slice(&u16::try_from(*asn).unwrap_or(AS_TRANS).to_be_bytes());
                }
                out.extend_from_slice(&address.octets());
            }
            AttributeValue::As4Aggregator { asn, address } => {
                out.extend_from_slice(&asn.to_be_bytes());
                out.extend_from_slice(&address.octets());
            }
            AttributeValue::Communities(list) => {
                for c in list {
                    out.extend_from_slice(&c.to_be_bytes());
                }
            }
            AttributeValue::OriginatorId(ip) => out.extend_from_slice(&ip.octets()),
            AttributeValue::ClusterList(list) => {
                for ip in list {
                    out.extend_from_slice(&ip.octets());
                }
            }
            AttributeValue::MpReach(mp) => {
                out.extend_from_slice(&mp.family.afi.to_be_bytes());
                out.push(mp.family.safi);
                out.push(mp.next_hop.len() as u8);
                out.extend_from_slice(&mp.next_hop);
                out.push(0);
                encode_nlri(&mp.nlri, out);
            }
            AttributeValue::MpUnreach(mp) => {
                out.extend_from_slice(&mp.family.afi.to_be_bytes());
                out.push(mp.family.safi);
                encode_nlri(&mp.nlri, out);
            }
            AttributeValue::LargeCommunities(list) => {
                for c in list {
                    out.extend_from_slice(&c.global_admin.to_be_bytes());
                    out.extend_from_slice(&c.local_1.to_be_bytes());
                    out.extend_from_slice(&c.local_2.to_be_bytes());
                }
            }
            AttributeValue::Unknown { data, .. } => out.extend_from_slice(data),
        }
    }
}

/// The optional and transitive bits RFC 4271 §5 and later RFCs give each
/// attribute type this codec knows; `None` for the others.
fn expected_flags(type_code: u8) -> Option<u8> {
    use attr_flags::*;
    use attr_type::*;
    Some(match type_code {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE => WELL_KNOWN,
        MULTI_EXIT_DISC | ORIGINATOR_ID | CLUSTER_LIST | MP_REACH_NLRI | MP_UNREACH_NLRI => {
            OPTIONAL
        }
        AGGREGATOR | COMMUNITIES | AS4_PATH | AS4_AGGREGATOR | LARGE_COMMUNITIES => {
            OPTIONAL_TRANSITIVE
        }
        _ => return None,
    })
}

fn encode_nlri(nlri: &Nlri, out: &mut Vec<u8>) {
    match nlri {
        Nlri::Prefixes(prefixes) => {
            for p in prefixes {
                encode_prefix(p, out);
            }
        }
        Nlri::Opaque(bytes) => out.extend_from_slice(bytes),
    }
}

/// Appends a prefix as length byte plus the significant octets.
pub(crate) fn encode_prefix(prefix: &IpNet, out: &mut Vec<u8>) {
    let len = prefix.prefix_len();
    out.push(len);
    let bytes = (len as usize).div_ceil(8);
    match prefix.trunc() {
        IpNet::V4(p) => out.extend_from_slice(&p.addr().octets()[..bytes]),
        IpNet::V6(p) => out.extend_from_slice(&p.addr().octets()[..bytes]),
    }
}

fn decode_prefixes(mut r: Reader<'_>, ipv6: bool) -> Option<Vec<IpNet>> {
    let mut out = Vec::with_capacity(r.len() / 4);
    while !r.is_empty() {
        let len = r.u8()?;
        if len > if ipv6 { 128 } else { 32 } {
            return None;
        }
        let bytes = r.take((len as usize).div_ceil(8))?;
        let net = if ipv6 {
            let mut octets = [0u8; 16];
            octets[..bytes.len()].copy_from_slice(bytes);
            IpNet::V6(Ipv6Net::new(Ipv6Addr::from(octets), len).ok()?.trunc())
        } else {
            let mut octets = [0u8; 4];
            octets[..bytes.len()].copy_from_slice(bytes);
            IpNet::V4(Ipv4Net::new(Ipv4Addr::from(octets), len).ok()?.trunc())
        };
        out.push(net);
    }
    Some(out)
}

fn decode_nlri(r: Reader<'_>, family: Family) -> Option<Nlri> {
    match family {
        Family::IPV4_UNICAST => decode_prefixes(r, false).map(Nlri::Prefixes),
        Family::IPV6_UNICAST => decode_prefixes(r, true).map(Nlri::Prefixes),
        _ => Some(Nlri::Opaque(r.rest().to_vec())),
    }
}

/// A path attribute: flags as sent, and the value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attribute {
    pub flags: u8,
    pub value: AttributeValue,
}

impl Attribute {
    /// An attribute with the flags its type is normally sent with.
    pub fn new(value: AttributeValue) -> Attribute {
        Attribute {
            flags: value.standard_flags(),
            value,
        }
    }

    fn encode(&self, four_octet: bool, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut value = Vec::new();
        self.value.encode(four_octet, &mut value);
        let extended = self.flags & attr_flags::EXTENDED_LENGTH != 0 || value.len() > 255;
        if value.len() > usize::from(u16::MAX) {
            return Err(EncodeError::FieldTooLong {
                what: "path attribute",
            });
        }
        if extended {
            out.push(self.flags | attr_flags::EXTENDED_LENGTH);
            out.push(self.value.type_code());
            out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        } else {
            out.push(self.flags);
            out.push(self.value.type_code());
            out.push(value.len() as u8);
        }
        out.extend_from_slice(&value);
        Ok(())
    }
}

/// An UPDATE message as on the wire: IPv4 withdrawn routes, path
/// attributes (MP_REACH/MP_UNREACH among them) and IPv4 NLRI.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    pub withdrawn: Vec<Ipv4Net>,
    pub attributes: Vec<Attribute>,
    pub nlri: Vec<Ipv4Net>,
}

impl Update {
    pub fn attribute(&self, type_code: u8) -> Option<&AttributeValue> {
        self.attributes
            .iter()
            .map(|a| &a.value)
            .find(|v| v.type_code() == type_code)
    }

    /// The family this UPDATE ends the initial table of, if it is an
    /// End-of-RIB marker (RFC 4724 §2).
    pub fn end_of_rib(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        match self.attributes.as_slice() {
            [] => Some(Family::IPV4_UNICAST),
            [
                Attribute {
                    value: AttributeValue::MpUnreach(MpUnreach { family, nlri }),
                    ..
                },
            ] if matches!(nlri, Nlri::Prefixes(p) if p.is_empty())
                || matches!(nlri, Nlri::Opaque(b) if b.is_empty()) =>
            {
                Some(*family)
            }
            _ => None,
        }
    }

    /// The End-of-RIB marker for `family`.
    pub fn end_of_rib_marker(family: Family) -> Update {
        if family == Family::IPV4_UNICAST {
            return Update::default();
        }
        Update {
            attributes: vec![Attribute::new(AttributeValue::MpUnreach(MpUnreach {
                family,
                nlri: Nlri::Prefixes(Vec::new()),
            }))],
            ..Update::default()
        }
    }

    pub(super) fn encode(&self, four_octet: bool, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let at = out.len();
        out.extend_from_slice(&[0, 0]);
        for p in &self.withdrawn {
            encode_prefix(&IpNet::V4(*p), out);
        }
        let withdrawn_len = out.len() - at - 2;
        out[at..at + 2].copy_from_slice(&length_field(withdrawn_len, "withdrawn routes")?);
        let at = out.len();
        out.extend_from_slice(&[0, 0]);
        for a in &self.attributes {
            a.encode(four_octet, out)?;
        }
        let attrs_len = out.len() - at - 2;
        out[at..at + 2].copy_from_slice(&length_field(attrs_len, "path attributes")?);
        for p in &self.nlri {
            encode_prefix(&IpNet::V4(*p), out);
        }
        Ok(())
    }

    pub(super) fn decode(mut body: Reader<'_>, four_octet: bool) -> Result<Update, DecodeError> {
        let malformed = |detail: &str| {
            DecodeError::new(
                code::UPDATE_MESSAGE,
                update_error::MALFORMED_ATTRIBUTE_LIST,
                Vec::new(),
                detail,
            )
        };
        let invalid_network = |detail: &str| {
            DecodeError::new(
                code::UPDATE_MESSAGE,
                update_error::INVALID_NETWORK_FIELD,
                Vec::new(),
                detail,
            )
        };
        let withdrawn_len = body.u16().unwrap_or_default() as usize;
        let withdrawn = body
            .sub(withdrawn_len)
            .ok_or_else(|| malformed("withdrawn routes length overruns the message"))?;
        let withdrawn = decode_prefixes(withdrawn, false)
            .ok_or_else(|| invalid_network("malformed withdrawn prefix"))?;
        let attrs_len = body
            .u16()
            .ok_or_else(|| malformed("message ends before the path attributes length"))?
            as usize;
        let mut attrs = body
            .sub(attrs_len)
            .ok_or_else(|| malformed("path attributes length overruns the message"))?;
        let mut attributes = Vec::new();
        let mut seen = [false; 256];
        while !attrs.is_empty() {
            let attribute = decode_attribute(&mut attrs, four_octet)?;
            let type_code = attribute.value.type_code();
            if std::mem::replace(&mut seen[type_code as usize], true) {
                return Err(malformed(&format!("attribute {type_code} appears twice")));
            }
            attributes.push(attribute);
        }
        let nlri =
            decode_prefixes(body, false).ok_or_else(|| invalid_network("malformed NLRI prefix"))?;
        let update = Update {
            withdrawn: withdrawn.into_iter().filter_map(v4_only).collect(),
            attributes,
            nlri: nlri.into_iter().filter_map(v4_only).collect(),
        };
        update.check_mandatory(&seen)?;
        Ok(update)
    }

    /// RFC 4271 §6.3 and RFC 4760 §3: reachable routes need ORIGIN and
    /// AS_PATH, and IPv4 NLRI in the NLRI field needs NEXT_HOP.
    fn check_mandatory(&self, seen: &[bool; 256]) -> Result<(), DecodeError> {
        let mut required = Vec::new();
        if !self.nlri.is_empty() || seen[attr_type::MP_REACH_NLRI as usize] {
            required.extend([attr_type::ORIGIN, attr_type::AS_PATH]);
        }
        if !self.nlri.is_empty() {
            required.push(attr_type::NEXT_HOP);
        }
        match required.into_iter().find(|&t| !seen[t as usize]) {
            None => Ok(()),
            Some(missing) => Err(DecodeError::new(
                code::UPDATE_MESSAGE,
                update_error::MISSING_WELL_KNOWN_ATTRIBUTE,
                vec![missing],
                format!("mandatory attribute {missing} is missing"),
            )),
        }
    }
}

fn v4_only(net: IpNet) -> Option<Ipv4Net> {
    match net {
        IpNet::V4(n) => Some(n),
        IpNet::V6(_) => None,
    }
}

fn length_field(len: usize, what: &'static str) -> Result<[u8; 2], EncodeError> {
    u16::try_from(len)
        .map(u16::to_be_bytes)
        .map_err(|_| EncodeError::FieldTooLong { what })
}

/// Decodes one attribute, checking its flags and length against its type.
fn decode_attribute(attrs: &mut Reader<'_>, four_octet: bool) -> Result<Attribute, DecodeError> {
    use attr_type::*;
    let whole = attrs.rest();
    let truncated = || {
        DecodeError::new(
            code::UPDATE_MESSAGE,
            update_error::MALFORMED_ATTRIBUTE_LIST,
            Vec::new(),
            "path attribute overruns the attribute list",
        )
    };
    let (Some(flags), Some(type_code)) = (attrs.u8(), attrs.u8()) else {
        return Err(truncated());
    };
    let extended = flags & attr_flags::EXTENDED_LENGTH != 0;
    let length = if extended {
        attrs.u16().map(usize::from)
    } else {
        attrs.u8().map(usize::from)
    }
    .ok_or_else(truncated)?;
    let value = attrs.sub(length).ok_or_else(truncated)?;
    let header_len = if extended { 4 } else { 3 };
    // The Data field of most attribute errors is the whole attribute.
    let raw = &whole[..header_len + length];
    let error = |subcode: u8, detail: String| {
        DecodeError::new(code::UPDATE_MESSAGE, subcode, raw.to_vec(), detail)
    };

    match expected_flags(type_code) {
        Some(expected) => {
            let category = flags & (attr_flags::OPTIONAL | attr_flags::TRANSITIVE);
            let partial_allowed = expected == attr_flags::OPTIONAL_TRANSITIVE;
            if category != expected || (flags & attr_flags::PARTIAL != 0 && !partial_allowed) {
                return Err(error(
                    update_error::ATTRIBUTE_FLAGS_ERROR,
                    format!("attribute {type_code} has flags {flags:#04x}"),
                ));
            }
        }
        None if flags & attr_flags::OPTIONAL == 0 => {
            return Err(error(
                update_error::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                format!("unrecognized well-known attribute {type_code}"),
            ));
        }
        None => {}
    }

    let length_error = || {
        error(
            update_error::ATTRIBUTE_LENGTH_ERROR,
            format!("attribute {type_code} has length {length}"),
        )
    };
    let exact = |n: usize| {
        if length == n {
            Ok(())
        } else {
            Err(length_error())
        }
    };
    let multiple = |n: usize| {
        if length % n == 0 {
            Ok(())
        } else {
            Err(length_error())
        }
    };
    let mut v = value;
    let value = match type_code {
        ORIGIN => {
            exact(1)?;
            match v.u8() {
                Some(0) => AttributeValue::Origin(Origin::Igp),
                Some(1) => AttributeValue::Origin(Origin::Egp),
                Some(2) => AttributeValue::Origin(Origin::Incomplete),
                other => {
                    return Err(error(
                        update_error::INVALID_ORIGIN,
                        format!("ORIGIN value {other:?} is undefined"),
                    ));
                }
            }
        }
        AS_PATH => AttributeValue::AsPath(AsPath::decode(v, four_octet).ok_or_else(|| {
            DecodeError::new(
                code::UPDATE_MESSAGE,
                update_error::MALFORMED_AS_PATH,
                Vec::new(),
                "malformed AS_PATH",
            )
        })?),
        NEXT_HOP => {
            exact(4)?;
            let ip = Ipv4Addr::from(v.u32().unwrap_or_default());
            if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
                return Err(error(
                    update_error::INVALID_NEXT_HOP,
                    format!("NEXT_HOP {ip} is not a host address"),
                ));
            }
            AttributeValue::NextHop(ip)
        }
        MULTI_EXIT_DISC => {
            exact(4)?;
            AttributeValue::MultiExitDisc(v.u32().unwrap_or_default())
        }
        LOCAL_PREF => {
            exact(4)?;
            AttributeValue::LocalPref(v.u32().unwrap_or_default())
        }
        ATOMIC_AGGREGATE => {
            exact(0)?;
            AttributeValue::AtomicAggregate
        }
        AGGREGATOR => {
            exact(if four_octet { 8 } else { 6 })?;
            let asn = if four_octet {
                v.u32().unwrap_or_default()
            } else {
                u32::from(v.u16().unwrap_or_default())
            };
            let address = Ipv4Addr::from(v.u32().unwrap_or_default());
            AttributeValue::Aggregator { asn, address }
        }
        AS4_AGGREGATOR => {
            exact(8)?;
            let asn = v.u32().unwrap_or_default();
            let address = Ipv4Addr::from(v.u32().unwrap_or_default());
            AttributeValue::As4Aggregator { asn, address }
        }
        COMMUNITIES => {
            multiple(4)?;
            AttributeValue::Communities(std::iter::from_fn(|| v.u32()).collect())
        }
        ORIGINATOR_ID => {
            exact(4)?;
            AttributeValue::OriginatorId(Ipv4Addr::from(v.u32().unwrap_or_default()))
        }
        CLUSTER_LIST => {
            multiple(4)?;
            AttributeValue::ClusterList(
                std::iter::from_fn(|| v.u32().map(Ipv4Addr::from)).collect(),
            )
        }
        LARGE_COMMUNITIES => {
            multiple(12)?;
            AttributeValue::LargeCommunities(
                std::iter::from_fn(|| {
                    Some(LargeCommunity {
                        global_admin: v.u32()?,
                        local_1: v.u32()?,
                        local_2: v.u32()?,
                    })
                })
                .collect(),
            )
        }
        AS4_PATH => AttributeValue::As4Path(AsPath::decode(v, true).ok_or_else(|| {
            error(
                update_error::OPTIONAL_ATTRIBUTE_ERROR,
                "malformed AS4_PATH".to_string(),
            )
        })?),
        MP_REACH_NLRI => {
            let bad = |what: &str| {
                error(
                    update_error::OPTIONAL_ATTRIBUTE_ERROR,
                    format!("MP_REACH_NLRI: {what}"),
                )
            };
            let (Some(afi), Some(safi), Some(nh_len)) = (v.u16(), v.u8(), v.u8()) else {
                return Err(bad("truncated header"));
            };
            let family = Family { afi, safi };
            let next_hop = v
                .take(nh_len as usize)
                .ok_or_else(|| bad("next hop overruns"))?;
            v.u8().ok_or_else(|| bad("missing reserved octet"))?;
            let nlri = decode_nlri(v, family).ok_or_else(|| bad("malformed prefix"))?;
            AttributeValue::MpReach(MpReach {
                family,
                next_hop: next_hop.to_vec(),
                nlri,
            })
        }
        MP_UNREACH_NLRI => {
            let bad = |what: &str| {
                error(
                    update_error::OPTIONAL_ATTRIBUTE_ERROR,
                    format!("MP_UNREACH_NLRI: {what}"),
                )
            };
            let (Some(afi), Some(safi)) = (v.u16(), v.u8()) else {
                return Err(bad("truncated header"));
            };
            let family = Family { afi, safi };
            let nlri = decode_nlri(v, family).ok_or_else(|| bad("malformed prefix"))?;
            AttributeValue::MpUnreach(MpUnreach { family, nlri })
        }
        _ => AttributeValue::Unknown {
            type_code,
            data: v.rest().to_vec(),
        },
    };
    Ok(Attribute { flags, value })
}
