//! Path attributes as the RIB holds them, and the translation between them
//! and wire UPDATEs: merging AS4_PATH for two-octet peers (RFC 6793 §4.2.3),
//! splitting an UPDATE's IPv4 and MP-BGP parts, and packing announcements
//! and withdrawals into as few messages as fit.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

use crate::wire::{
    AS_TRANS, AsPath, AsSegment, Attribute, AttributeValue, DecodeError, Family, HEADER_LEN,
    LargeCommunity, MAX_MESSAGE_LEN, MpReach, MpUnreach, Nlri, Origin, Update, attr_flags, code,
    update_error,
};

/// Well-known communities (RFC 1997).
pub mod community {
    pub const NO_EXPORT: u32 = 0xFFFF_FF01;
    pub const NO_ADVERTISE: u32 = 0xFFFF_FF02;
    pub const NO_EXPORT_SUBCONFED: u32 = 0xFFFF_FF03;
}

/// The attributes of one path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PathAttributes {
    pub origin: Origin,
    /// Four-octet AS numbers, AS4_PATH already merged in.
    pub as_path: AsPath,
    /// NEXT_HOP, or the global next hop of MP_REACH_NLRI.
    pub next_hop: Option<IpAddr>,
    /// The link-local half of an IPv6 next hop.
    pub link_local_next_hop: Option<Ipv6Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<(u32, Ipv4Addr)>,
    pub communities: Vec<u32>,
    pub large_communities: Vec<LargeCommunity>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
    /// Optional transitive attributes this speaker does not interpret;
    /// passed on with the Partial bit set (RFC 4271 §5).
    pub other: Vec<Attribute>,
}

impl PathAttributes {
    pub fn has_community(&self, value: u32) -> bool {
        self.communities.contains(&value)
    }
}

/// What one received UPDATE means for the RIB.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Received {
    pub withdrawn: Vec<IpNet>,
    /// Announced prefixes, grouped by the attributes they share.
    pub announced: Vec<(Arc<PathAttributes>, Vec<IpNet>)>,
    /// The family whose initial table this UPDATE ends (RFC 4724).
    pub end_of_rib: Option<Family>,
}

impl Received {
    pub fn announced_count(&self) -> usize {
        self.announced.iter().map(|(_, p)| p.len()).sum()
    }
}

/// Interprets a decoded UPDATE from a session that negotiated
/// `four_octet_as` and `families`. NLRI of other families is ignored
/// (RFC 4760 §7). An MP_REACH next hop of a length no family allows is an
/// error that resets the session (RFC 7606 §7.11).
pub fn interpret(
    update: Update,
    four_octet_as: bool,
    families: &[Family],
) -> Result<Received, DecodeError> {
    let mut received = Received {
        end_of_rib: update.end_of_rib(),
        ..Received::default()
    };
    if received.end_of_rib.is_some() {
        return Ok(received);
    }
    let accepts = |family: Family| families.contains(&family);
    if accepts(Family::IPV4_UNICAST) {
        received
            .withdrawn
            .extend(update.withdrawn.iter().map(|n| IpNet::V4(*n)));
    }

    let mut base = PathAttributes::default();
    let mut next_hop_v4 = None;
    let mut reach = None;
    let mut as4_path = None;
    let mut as4_aggregator = None;
    for attribute in update.attributes {
        match attribute.value {
            AttributeValue::Origin(o) => base.origin = o,
            AttributeValue::AsPath(p) => base.as_path = p,
            AttributeValue::NextHop(ip) => next_hop_v4 = Some(IpAddr::V4(ip)),
            AttributeValue::MultiExitDisc(v) => base.med = Some(v),
            AttributeValue::LocalPref(v) => base.local_pref = Some(v),
            AttributeValue::AtomicAggregate => base.atomic_aggregate = true,
            AttributeValue::Aggregator { asn, address } => base.aggregator = Some((asn, address)),
            AttributeValue::Communities(c) => base.communities = c,
            AttributeValue::OriginatorId(ip) => base.originator_id = Some(ip),
            AttributeValue::ClusterList(l) => base.cluster_list = l,
            AttributeValue::LargeCommunities(l) => base.large_communities = l,
            AttributeValue::As4Path(p) => as4_path = Some(p),
            AttributeValue::As4Aggregator { asn, address } => as4_aggregator = Some((asn, address)),
            AttributeValue::MpReach(mp) => reach = Some(mp),
            AttributeValue::MpUnreach(mp) => {
                if accepts(mp.family) {
                    received.withdrawn.extend_from_slice(mp.nlri.prefixes());
                }
            }
            AttributeValue::Unknown { .. } => {
                // Optional non-transitive attributes we do not know are
                // dropped; transitive ones travel on, marked partial.
                if attribute.flags & attr_flags::TRANSITIVE != 0 {
                    base.other.push(Attribute {
                        flags: (attribute.flags | attr_flags::PARTIAL)
                            & !attr_flags::EXTENDED_LENGTH,
                        value: attribute.value,
                    });
                }
            }
        }
    }
    if !four_octet_as {
        if let Some(as4) = as4_path {
            base.as_path = merge_as4_path(&base.as_path, as4);
        }
        if let (Some((asn, _)), Some(real)) = (base.aggregator, as4_aggregator)
            && asn == u32::from(AS_TRANS)
        {
            base.aggregator = Some(real);
        }
    }

    if !update.nlri.is_empty() && accepts(Family::IPV4_UNICAST) {
        let attrs = PathAttributes {
            next_hop: next_hop_v4,
            ..base.clone()
        };
        received.announced.push((
            Arc::new(attrs),
            update.nlri.iter().map(|n| IpNet::V4(*n)).collect(),
        ));
    }
    if let Some(mp) = reach
        && accepts(mp.family)
    {
        let Some((global, link_local)) = mp.next_hops().filter(|(g, _)| {
            // IPv4 NLRI with an IPv4 next hop, IPv6 NLRI with an IPv6 one.
            g.is_ipv4() == (mp.family == Family::IPV4_UNICAST)
        }) else {
            return Err(DecodeError::new(
                code::UPDATE_MESSAGE,
                update_error::OPTIONAL_ATTRIBUTE_ERROR,
                Vec::new(),
                format!(
                    "MP_REACH_NLRI for {} has a {}-byte next hop",
                    mp.family,
                    mp.next_hop.len()
                ),
            ));
        };
        if let Nlri::Prefixes(prefixes) = mp.nlri
            && !prefixes.is_empty()
        {
            let attrs = PathAttributes {
                next_hop: Some(global),
                link_local_next_hop: link_local,
                ..base
            };
            received.announced.push((Arc::new(attrs), prefixes));
        }
    }
    Ok(received)
}

/// RFC 6793 §4.2.3: keep the leading ASes of AS_PATH that AS4_PATH does not
/// cover, then AS4_PATH. An AS4_PATH longer than AS_PATH is ignored.
fn merge_as4_path(as_path: &AsPath, as4_path: AsPath) -> AsPath {
    let (old_len, new_len) = (as_path.length(), as4_path.length());
    if new_len > old_len {
        return as_path.clone();
    }
    let mut keep = old_len - new_len;
    let mut segments = Vec::new();
    for segment in &as_path.segments {
        if keep == 0 {
            break;
        }
        match segment.kind {
            crate::wire::SegmentKind::Sequence => {
                let n = keep.min(segment.asns.len());
                segments.push(AsSegment {
                    kind: segment.kind,
                    asns: segment.asns[..n].to_vec(),
                });
                keep -= n;
            }
            crate::wire::SegmentKind::Set => {
                segments.push(segment.clone());
                keep -= 1;
            }
            _ => segments.push(segment.clone()),
        }
    }
    segments.extend(as4_path.segments);
    AsPath { segments }
}

/// The attributes of a path as sent on a session, IPv4 NEXT_HOP included
/// when `family` is IPv4 unicast and MP_REACH left to the packer.
fn wire_attributes(attrs: &PathAttributes, family: Family, four_octet_as: bool) -> Vec<Attribute> {
    let mut out = vec![
        Attribute::new(AttributeValue::Origin(attrs.origin)),
        Attribute::new(AttributeValue::AsPath(attrs.as_path.clone())),
    ];
    if family == Family::IPV4_UNICAST
        && let Some(IpAddr::V4(nh)) = attrs.next_hop
    {
        out.push(Attribute::new(AttributeValue::NextHop(nh)));
    }
    if let Some(med) = attrs.med {
        out.push(Attribute::new(AttributeValue::MultiExitDisc(med)));
    }
    if let Some(pref) = attrs.local_pref {
        out.push(Attribute::new(AttributeValue::LocalPref(pref)));
    }
    if attrs.atomic_aggregate {
        out.push(Attribute::new(AttributeValue::AtomicAggregate));
    }
    if let Some((asn, address)) = attrs.aggregator {
        out.push(Attribute::new(AttributeValue::Aggregator { asn, address }));
        if !four_octet_as && asn > u32::from(u16::MAX) {
            out.push(Attribute::new(AttributeValue::As4Aggregator {
                asn,
                address,
            }));
        }
    }
    if !attrs.communities.is_empty() {
        out.push(Attribute::new(AttributeValue::Communities(
            attrs.communities.clone(),
        )));
    }
    if let Some(id) = attrs.originator_id {
        out.push(Attribute::new(AttributeValue::OriginatorId(id)));
    }
    if !attrs.cluster_list.is_empty() {
        out.push(Attribute::new(AttributeValue::ClusterList(
            attrs.cluster_list.clone(),
        )));
    }
    if !four_octet_as && !attrs.as_path.is_two_octet() {
        out.push(Attribute::new(AttributeValue::As4Path(
            attrs.as_path.clone(),
        )));
    }
    if !attrs.large_communities.is_empty() {
        out.push(Attribute::new(AttributeValue::LargeCommunities(
            attrs.large_communities.clone(),
        )));
    }
    out.extend(attrs.other.iter().cloned());
    out
}

fn encoded_len(attributes: &[Attribute], four_octet_as: bool) -> usize {
    let update = Update {
        attributes: attributes.to_vec(),
        ..Update::default()
    };
    crate::wire::Message::Update(update)
        .to_bytes(four_octet_as)
        .map(|b| b.len())
        .unwrap_or(MAX_MESSAGE_LEN)
}

fn prefix_wire_len(prefix: &IpNet) -> usize {
    1 + (prefix.prefix_len() as usize).div_ceil(8)
}

/// Splits `prefixes` into runs whose encoding fits in `room` bytes each.
fn chunks_fitting(prefixes: &[IpNet], room: usize) -> Vec<&[IpNet]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (i, p) in prefixes.iter().enumerate() {
        let len = prefix_wire_len(p);
        if used + len > room && i > start {
            out.push(&prefixes[start..i]);
            start = i;
            used = 0;
        }
        used += len;
    }
    if start < prefixes.len() {
        out.push(&prefixes[start..]);
    }
    out
}

/// UPDATEs announcing `prefixes` (all of `family`) with `attrs`, each within
/// the 4096-byte limit.
pub fn announcements(
    attrs: &PathAttributes,
    family: Family,
    prefixes: &[IpNet],
    four_octet_as: bool,
) -> Vec<Update> {
    if prefixes.is_empty() {
        return Vec::new();
    }
    let mut attributes = wire_attributes(attrs, family, four_octet_as);
    if family == Family::IPV4_UNICAST {
        let room = MAX_MESSAGE_LEN - encoded_len(&attributes, four_octet_as);
        return chunks_fitting(prefixes, room)
            .into_iter()
            .map(|chunk| Update {
                withdrawn: Vec::new(),
                attributes: attributes.clone(),
                nlri: chunk.iter().filter_map(v4).collect(),
            })
            .collect();
    }
    let mut next_hop = match attrs.next_hop {
        Some(IpAddr::V6(ip)) => ip.octets().to_vec(),
        Some(IpAddr::V4(ip)) => ip.octets().to_vec(),
        None => Vec::new(),
    };
    if let Some(ll) = attrs.link_local_next_hop {
        next_hop.extend_from_slice(&ll.octets());
    }
    let reach = |nlri: Vec<IpNet>| Attribute {
        // Always the two-byte length, so the size is known before filling.
        flags: attr_flags::OPTIONAL | attr_flags::EXTENDED_LENGTH,
        value: AttributeValue::MpReach(MpReach {
            family,
            next_hop: next_hop.clone(),
            nlri: Nlri::Prefixes(nlri),
        }),
    };
    attributes.insert(0, reach(Vec::new()));
    let room = MAX_MESSAGE_LEN - encoded_len(&attributes, four_octet_as);
    chunks_fitting(prefixes, room)
        .into_iter()
        .map(|chunk| {
            let mut attributes = attributes.clone();
            attributes[0] = reach(chunk.to_vec());
            Update {
                attributes,
                ..Update::default()
            }
        })
        .collect()
}

/// UPDATEs withdrawing `prefixes` (all of `family`).
pub fn withdrawals(family: Family, prefixes: &[IpNet]) -> Vec<Update> {
    if prefixes.is_empty() {
        return Vec::new();
    }
    if family == Family::IPV4_UNICAST {
        let room = MAX_MESSAGE_LEN - HEADER_LEN - 4;
        return chunks_fitting(prefixes, room)
            .into_iter()
            .map(|chunk| Update {
                withdrawn: chunk.iter().filter_map(v4).collect(),
                ..Update::default()
            })
            .collect();
    }
    // Header, two length fields, attribute header (4), AFI/SAFI (3).
    let room = MAX_MESSAGE_LEN - HEADER_LEN - 4 - 4 - 3;
    chunks_fitting(prefixes, room)
        .into_iter()
        .map(|chunk| Update {
            attributes: vec![Attribute {
                flags: attr_flags::OPTIONAL | attr_flags::EXTENDED_LENGTH,
                value: AttributeValue::MpUnreach(MpUnreach {
                    family,
                    nlri: Nlri::Prefixes(chunk.to_vec()),
                }),
            }],
            ..Update::default()
        })
        .collect()
}

fn v4(net: &IpNet) -> Option<ipnet::Ipv4Net> {
    match net {
        IpNet::V4(n) => Some(*n),
        IpNet::V6(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Message, SegmentKind, decode};

    fn round_trip(updates: Vec<Update>, four: bool, families: &[Family]) -> Received {
        let mut all = Received::default();
        for u in updates {
            let bytes = Message::Update(u).to_bytes(four).expect("fits");
            assert!(bytes.len() <= MAX_MESSAGE_LEN);
            let Message::Update(u) = decode(&bytes, four).unwrap() else {
                panic!()
            };
            let r = interpret(u, four, families).unwrap();
            all.withdrawn.extend(r.withdrawn);
            all.announced.extend(r.announced);
        }
        all
    }

    fn attrs_with(next_hop: &str) -> PathAttributes {
        PathAttributes {
            origin: Origin::Igp,
            as_path: AsPath::sequence([64512, 4_200_000_001]),
            next_hop: Some(next_hop.parse().unwrap()),
            local_pref: Some(100),
            communities: vec![(64512 << 16) | 7],
            large_communities: vec![LargeCommunity {
                global_admin: 64512,
                local_1: 1,
                local_2: 2,
            }],
            ..PathAttributes::default()
        }
    }

    #[test]
    fn many_prefixes_pack_into_full_messages_and_come_back() {
        let both = [Family::IPV4_UNICAST, Family::IPV6_UNICAST];
        for (family, attrs, prefixes) in [
            (
                Family::IPV4_UNICAST,
                attrs_with("10.0.0.1"),
                (0..5000u32)
                    .map(|i| IpNet::new(Ipv4Addr::from(0x0a00_0000 | (i << 8)).into(), 24).unwrap())
                    .collect::<Vec<_>>(),
            ),
            (
                Family::IPV6_UNICAST,
                attrs_with("fd00::1"),
                (0..3000u128)
                    .map(|i| {
                        IpNet::new(Ipv6Addr::from((0xfd00u128 << 112) | (i << 64)).into(), 64)
                            .unwrap()
                    })
                    .collect(),
            ),
        ] {
            for four in [true, false] {
                let updates = announcements(&attrs, family, &prefixes, four);
                assert!(updates.len() > 1, "more than one message needed");
                let received = round_trip(updates, four, &both);
                let got: Vec<IpNet> = received
                    .announced
                    .iter()
                    .flat_map(|(_, p)| p.clone())
                    .collect();
                assert_eq!(got, prefixes);
                for (a, _) in &received.announced {
                    assert_eq!(
                        **a, attrs,
                        "two-octet sessions restore the path from AS4_PATH"
                    );
                }
                let withdrawn = round_trip(withdrawals(family, &prefixes), four, &both);
                assert_eq!(withdrawn.withdrawn, prefixes);
            }
        }
    }

    #[test]
    fn families_not_negotiated_are_ignored() {
        let v6 = announcements(
            &attrs_with("fd00::1"),
            Family::IPV6_UNICAST,
            &["fd00:1::/64".parse().unwrap()],
            true,
        );
        let received = round_trip(v6, true, &[Family::IPV4_UNICAST]);
        assert_eq!(received.announced_count(), 0);
    }

    #[test]
    fn ipv6_link_local_next_hops_survive() {
        let mut attrs = attrs_with("fd00::1");
        attrs.link_local_next_hop = Some("fe80::1".parse().unwrap());
        let updates = announcements(
            &attrs,
            Family::IPV6_UNICAST,
            &["fd00:1::/64".parse().unwrap()],
            true,
        );
        let received = round_trip(updates, true, &[Family::IPV6_UNICAST]);
        assert_eq!(*received.announced[0].0, attrs);
    }

    #[test]
    fn mismatched_mp_next_hop_resets_the_session() {
        let mut attrs = attrs_with("10.0.0.1");
        attrs.next_hop = Some("10.0.0.1".parse().unwrap());
        let updates = announcements(
            &attrs,
            Family::IPV6_UNICAST,
            &["fd00:1::/64".parse().unwrap()],
            true,
        );
        let bytes = Message::Update(updates[0].clone()).to_bytes(true).unwrap();
        let Message::Update(u) = decode(&bytes, true).unwrap() else {
            panic!()
        };
        let err = interpret(u, true, &[Family::IPV6_UNICAST]).unwrap_err();
        assert_eq!(
            (err.notification.code, err.notification.subcode),
            (code::UPDATE_MESSAGE, update_error::OPTIONAL_ATTRIBUTE_ERROR)
        );
    }

    #[test]
    fn as4_path_merge_follows_rfc_6793() {
        let cases = [
            // AS_PATH [AS_TRANS, 65001], AS4_PATH [4200000000] → keep 65001? No:
            // keep the leading ASes AS4_PATH does not cover.
            (
                vec![23456, 65001],
                vec![4_200_000_000, 65001],
                vec![4_200_000_000, 65001],
            ),
            (
                vec![65002, 23456, 65001],
                vec![4_200_000_000, 65001],
                vec![65002, 4_200_000_000, 65001],
            ),
            // AS4_PATH longer than AS_PATH: ignored.
            (vec![65001], vec![1, 2], vec![65001]),
        ];
        for (old, new, want) in cases {
            let merged = merge_as4_path(&AsPath::sequence(old), AsPath::sequence(new));
            let flat: Vec<u32> = merged
                .segments
                .iter()
                .flat_map(|s| s.asns.clone())
                .collect();
            assert_eq!(flat, want);
        }
        let with_set = AsPath {
            segments: vec![
                AsSegment {
                    kind: SegmentKind::Sequence,
                    asns: vec![65002],
                },
                AsSegment {
                    kind: SegmentKind::Set,
                    asns: vec![1, 2],
                },
            ],
        };
        assert_eq!(merge_as4_path(&with_set, AsPath::sequence([7])).length(), 2);
    }

    #[test]
    fn unknown_transitive_attributes_travel_on_partial() {
        let update = Update {
            attributes: vec![
                Attribute::new(AttributeValue::Origin(Origin::Igp)),
                Attribute::new(AttributeValue::AsPath(AsPath::default())),
                Attribute::new(AttributeValue::NextHop(Ipv4Addr::new(10, 0, 0, 1))),
                Attribute {
                    flags: 0xc0,
                    value: AttributeValue::Unknown {
                        type_code: 99,
                        data: vec![1],
                    },
                },
                Attribute {
                    flags: 0x80,
                    value: AttributeValue::Unknown {
                        type_code: 98,
                        data: vec![2],
                    },
                },
            ],
            nlri: vec!["10.1.0.0/16".parse().unwrap()],
            ..Update::default()
        };
        let r = interpret(update, true, &[Family::IPV4_UNICAST]).unwrap();
        let other = &r.announced[0].0.other;
        assert_eq!(other.len(), 1);
        assert_eq!(other[0].flags, 0xe0);
    }
}
