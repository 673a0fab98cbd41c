//! Round trips on bytes captured from BIRD 2.0.12, GoBGP 3.10 and FRR 8.4
//! talking to each other (IPv4 and IPv6 unicast, graceful restart,
//! communities, large communities, MED, route refresh, withdrawals, Cease),
//! table tests of malformed input, and property tests.

use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use proptest::prelude::*;

use super::*;

const BIRD_TO_GOBGP: &[u8] = include_bytes!("captures/bird-to-gobgp.bin");
const GOBGP_TO_BIRD: &[u8] = include_bytes!("captures/gobgp-to-bird.bin");
const BIRD_TO_FRR: &[u8] = include_bytes!("captures/bird-to-frr.bin");
const FRR_TO_BIRD: &[u8] = include_bytes!("captures/frr-to-bird.bin");

/// Splits a captured TCP stream into messages.
fn split(mut stream: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !stream.is_empty() {
        let length = message_length(stream).unwrap().expect("whole message");
        out.push(&stream[..length]);
        stream = &stream[length..];
    }
    out
}

fn decode_stream(stream: &[u8]) -> Vec<Message> {
    split(stream)
        .into_iter()
        .map(|bytes| {
            let message = decode(bytes, true).unwrap();
            assert_eq!(
                message.to_bytes(true).unwrap(),
                bytes,
                "re-encoding {message:?} changed its bytes"
            );
            message
        })
        .collect()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn all_prefixes(messages: &[Message]) -> Vec<IpNet> {
    let mut out = Vec::new();
    for m in messages {
        if let Message::Update(u) = m {
            out.extend(u.nlri.iter().map(|n| IpNet::V4(*n)));
            for a in &u.attributes {
                if let AttributeValue::MpReach(mp) = &a.value {
                    out.extend_from_slice(mp.nlri.prefixes());
                }
            }
        }
    }
    out
}

#[test]
fn bird_stream_to_gobgp_round_trips() {
    let messages = decode_stream(BIRD_TO_GOBGP);
    let Message::Open(open) = &messages[0] else {
        panic!("first message is not OPEN")
    };
    assert_eq!(open.asn(), 65001);
    assert_eq!(open.bgp_id, Ipv4Addr::new(10, 0, 1, 1));
    assert_eq!(
        open.families(),
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );
    assert!(open.route_refresh());
    let gr = open
        .graceful_restart()
        .expect("BIRD was configured with graceful restart");
    assert_eq!(gr.restart_time, 120);
    assert!(!open.parameter_per_capability, "BIRD sends one parameter");
    assert_eq!(messages[1], Message::Keepalive);

    let prefixes = all_prefixes(&messages);
    for p in [
        "192.168.10.0/24",
        "192.168.11.0/26",
        "10.96.0.0/12",
        "fd00:10::/64",
        "fd00:11::/122",
    ] {
        assert!(prefixes.contains(&net(p)), "{p} not announced");
    }
    // The export filter added a community, a large community and a MED.
    let update = messages
        .iter()
        .find_map(|m| match m {
            Message::Update(u) if u.nlri.contains(&"192.168.10.0/24".parse().unwrap()) => Some(u),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        update.attribute(attr_type::COMMUNITIES),
        Some(&AttributeValue::Communities(vec![(64512 << 16) | 100]))
    );
    assert_eq!(
        update.attribute(attr_type::LARGE_COMMUNITIES),
        Some(&AttributeValue::LargeCommunities(vec![LargeCommunity {
            global_admin: 64512,
            local_1: 1,
            local_2: 2
        }]))
    );
    assert_eq!(
        update.attribute(attr_type::MULTI_EXIT_DISC),
        Some(&AttributeValue::MultiExitDisc(50))
    );
    assert!(
        messages.iter().any(
            |m| matches!(m, Message::Update(u) if u.end_of_rib() == Some(Family::IPV6_UNICAST))
        )
    );
    assert!(matches!(
        messages.last(),
        Some(Message::Notification(n)) if n.code == code::CEASE && n.subcode == cease::ADMINISTRATIVE_SHUTDOWN
    ));
}

#[test]
fn gobgp_stream_to_bird_round_trips() {
    let messages = decode_stream(GOBGP_TO_BIRD);
    let Message::Open(open) = &messages[0] else {
        panic!("first message is not OPEN")
    };
    assert_eq!(open.asn(), 65002);
    assert!(!open.parameter_per_capability, "GoBGP sends one parameter");
    let prefixes = all_prefixes(&messages);
    assert!(prefixes.contains(&net("203.0.113.0/24")));
    assert!(prefixes.contains(&net("2001:db8:5::/48")));
    // 198.51.100.0/25 was announced with a longer path, then withdrawn.
    let announced = messages.iter().find_map(|m| match m {
        Message::Update(u) if u.nlri.contains(&"198.51.100.0/25".parse().unwrap()) => Some(u),
        _ => None,
    });
    assert_eq!(
        announced.unwrap().attribute(attr_type::AS_PATH),
        Some(&AttributeValue::AsPath(AsPath::sequence([
            65002, 65010, 65011
        ])))
    );
    assert!(messages.iter().any(|m| matches!(m, Message::Update(u) if u.withdrawn.contains(&"198.51.100.0/25".parse::<Ipv4Net>().unwrap()))));
}

#[test]
fn bird_and_frr_ibgp_streams_round_trip() {
    let from_bird = decode_stream(BIRD_TO_FRR);
    let from_frr = decode_stream(FRR_TO_BIRD);
    let Message::Open(open) = &from_frr[0] else {
        panic!("first message is not OPEN")
    };
    assert_eq!(open.asn(), 65001);
    assert!(
        open.parameter_per_capability,
        "FRR sends a parameter per capability"
    );
    // FRR advertises capabilities we keep as bytes (FQDN, add-path, ...).
    assert!(
        open.capabilities
            .iter()
            .any(|c| matches!(c, Capability::Unknown { .. }))
    );
    let prefixes = all_prefixes(&from_frr);
    assert!(prefixes.contains(&net("172.16.5.0/24")));
    assert!(prefixes.contains(&net("fd00:99::/48")));
    // iBGP: LOCAL_PREF is present.
    assert!(
        from_bird.iter().any(
            |m| matches!(m, Message::Update(u) if u.attribute(attr_type::LOCAL_PREF).is_some())
        )
    );
    // FRR asked for a refresh; BIRD answered with enhanced refresh markers.
    assert!(
        from_frr
            .iter()
            .any(|m| matches!(m, Message::RouteRefresh(r) if r.family == Family::IPV4_UNICAST))
    );
    assert!(
        from_bird
            .iter()
            .any(|m| matches!(m, Message::RouteRefresh(r) if r.subtype == 1))
    );
    // IPv6 next hop in MP_REACH: a global address.
    let mp = from_bird
        .iter()
        .find_map(|m| match m {
            Message::Update(u) => u.attributes.iter().find_map(|a| match &a.value {
                AttributeValue::MpReach(mp) if mp.family == Family::IPV6_UNICAST => {
                    Some(mp.clone())
                }
                _ => None,
            }),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        mp.next_hops().unwrap().0,
        "fd00:2::1".parse::<std::net::IpAddr>().unwrap()
    );
}

#[test]
fn streams_split_at_every_byte_boundary() {
    // A reader sees arbitrary TCP segment boundaries; `message_length` must
    // say "not yet" on every prefix of a message and never err.
    for stream in [BIRD_TO_GOBGP, GOBGP_TO_BIRD, BIRD_TO_FRR, FRR_TO_BIRD] {
        for message in split(stream) {
            for cut in 0..message.len() {
                assert_eq!(message_length(&message[..cut]), Ok(None));
            }
        }
    }
}

fn header(length: u16, kind: u8) -> Vec<u8> {
    let mut out = MARKER.to_vec();
    out.extend_from_slice(&length.to_be_bytes());
    out.push(kind);
    out
}

/// An UPDATE with the given attribute bytes and IPv4 NLRI.
fn update_with(attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 0];
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(attrs);
    body.extend_from_slice(nlri);
    let mut out = header((19 + body.len()) as u16, message_type::UPDATE);
    out.extend_from_slice(&body);
    out
}

const ORIGIN_IGP: [u8; 4] = [0x40, 1, 1, 0];
const EMPTY_AS_PATH: [u8; 3] = [0x40, 2, 0];
const NEXT_HOP: [u8; 7] = [0x40, 3, 4, 10, 0, 0, 1];
const NLRI_10_1: [u8; 3] = [16, 10, 1];

fn attrs(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Name, bytes, expected code and subcode, expected data field.
type Case = (&'static str, Vec<u8>, (u8, u8), Option<Vec<u8>>);

#[test]
fn malformed_messages_get_the_rfc_notification() {
    use code::*;
    let mut bad_marker = header(19, message_type::KEEPALIVE);
    bad_marker[3] = 0;
    let open = |version: u8, hold: u16, params: &[u8]| {
        let mut body = vec![version, 0xfd, 0xe8];
        body.extend_from_slice(&hold.to_be_bytes());
        body.extend_from_slice(&[10, 0, 0, 1, params.len() as u8]);
        body.extend_from_slice(params);
        let mut out = header((19 + body.len()) as u16, message_type::OPEN);
        out.extend_from_slice(&body);
        out
    };
    let cases: Vec<Case> = vec![
        (
            "marker",
            bad_marker,
            (MESSAGE_HEADER, header::CONNECTION_NOT_SYNCHRONIZED),
            None,
        ),
        (
            "type 9",
            header(19, 9),
            (MESSAGE_HEADER, header::BAD_MESSAGE_TYPE),
            Some(vec![9]),
        ),
        (
            "short",
            header(18, message_type::KEEPALIVE),
            (MESSAGE_HEADER, header::BAD_MESSAGE_LENGTH),
            Some(vec![0, 18]),
        ),
        (
            "long keepalive",
            [header(20, message_type::KEEPALIVE), vec![0]].concat(),
            (MESSAGE_HEADER, header::BAD_MESSAGE_LENGTH),
            Some(vec![0, 20]),
        ),
        (
            "too long",
            header(4097, message_type::UPDATE),
            (MESSAGE_HEADER, header::BAD_MESSAGE_LENGTH),
            Some(vec![0x10, 0x01]),
        ),
        (
            "short open",
            [header(28, message_type::OPEN), vec![0; 9]].concat(),
            (MESSAGE_HEADER, header::BAD_MESSAGE_LENGTH),
            Some(vec![0, 28]),
        ),
        (
            "version 3",
            open(3, 90, &[]),
            (OPEN_MESSAGE, open_error::UNSUPPORTED_VERSION),
            Some(vec![0, 4]),
        ),
        (
            "hold 2",
            open(4, 2, &[]),
            (OPEN_MESSAGE, open_error::UNACCEPTABLE_HOLD_TIME),
            None,
        ),
        (
            "param type 1",
            open(4, 90, &[1, 0]),
            (OPEN_MESSAGE, open_error::UNSUPPORTED_OPTIONAL_PARAMETER),
            None,
        ),
        (
            "param overrun",
            open(4, 90, &[2, 9, 1, 4]),
            (OPEN_MESSAGE, open_error::UNSPECIFIC),
            None,
        ),
        (
            "mp capability length",
            open(4, 90, &[2, 5, 1, 3, 0, 1, 0]),
            (OPEN_MESSAGE, open_error::UNSPECIFIC),
            None,
        ),
        (
            "withdrawn overrun",
            [header(23, message_type::UPDATE), vec![0, 9, 0, 0]].concat(),
            (UPDATE_MESSAGE, update_error::MALFORMED_ATTRIBUTE_LIST),
            None,
        ),
        (
            "attributes overrun",
            [header(23, message_type::UPDATE), vec![0, 0, 0, 9]].concat(),
            (UPDATE_MESSAGE, update_error::MALFORMED_ATTRIBUTE_LIST),
            None,
        ),
        (
            "duplicate origin",
            update_with(
                &attrs(&[&ORIGIN_IGP, &ORIGIN_IGP, &EMPTY_AS_PATH, &NEXT_HOP]),
                &NLRI_10_1,
            ),
            (UPDATE_MESSAGE, update_error::MALFORMED_ATTRIBUTE_LIST),
            None,
        ),
        (
            "origin marked optional",
            update_with(
                &attrs(&[&[0xc0, 1, 1, 0], &EMPTY_AS_PATH, &NEXT_HOP]),
                &NLRI_10_1,
            ),
            (UPDATE_MESSAGE, update_error::ATTRIBUTE_FLAGS_ERROR),
            Some(vec![0xc0, 1, 1, 0]),
        ),
        (
            "origin length 2",
            update_with(
                &attrs(&[&[0x40, 1, 2, 0, 0], &EMPTY_AS_PATH, &NEXT_HOP]),
                &NLRI_10_1,
            ),
            (UPDATE_MESSAGE, update_error::ATTRIBUTE_LENGTH_ERROR),
            Some(vec![0x40, 1, 2, 0, 0]),
        ),
        (
            "origin 3",
            update_with(
                &attrs(&[&[0x40, 1, 1, 3], &EMPTY_AS_PATH, &NEXT_HOP]),
                &NLRI_10_1,
            ),
            (UPDATE_MESSAGE, update_error::INVALID_ORIGIN),
            Some(vec![0x40, 1, 1, 3]),
        ),
        (
            "next hop 0.0.0.0",
            update_with(
                &attrs(&[&ORIGIN_IGP, &EMPTY_AS_PATH, &[0x40, 3, 4, 0, 0, 0, 0]]),
                &NLRI_10_1,
            ),
            (UPDATE_MESSAGE, update_error::INVALID_NEXT_HOP),
            Some(vec![0x40, 3, 4, 0, 0, 0, 0]),
        ),
        (
            "next hop length 3",
            update_with(
                &attrs(&[&ORIGIN_IGP, &EMPTY_AS_PATH, &[0x40, 3, 3, 1, 2, 3]]),
                &NLRI_10_1,
            ),
            (UPDATE_MESSAGE, update_error::ATTRIBUTE_LENGTH_ERROR),
            Some(vec![0x40, 3, 3, 1, 2, 3]),
        ),
        (
            "missing next hop",
            update_with(&attrs(&[&ORIGIN_IGP, &EMPTY_AS_PATH]), &NLRI_10_1),
            (UPDATE_MESSAGE, update_error::MISSING_WELL_KNOWN_ATTRIBUTE),
            Some(vec![attr_type::NEXT_HOP]),
        ),
        (
            "missing origin",
            update_with(&attrs(&[&EMPTY_AS_PATH, &NEXT_HOP]), &NLRI_10_1),
            (UPDATE_MESSAGE, update_error::MISSING_WELL_KNOWN_ATTRIBUTE),
            Some(vec![attr_type::ORIGIN]),
        ),
        (
            "unknown well-known",
            update_with(
                &attrs(&[&ORIGIN_IGP, &EMPTY_AS_PATH, &NEXT_HOP, &[0x40, 99, 1, 7]]),
                &NLRI_10_1,
            ),
            (
                UPDATE_MESSAGE,
                update_error::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
            ),
            Some(vec![0x40, 99, 1, 7]),
        ),
        (
            "as path segment type 9",
            update_with(
                &attrs(&[&ORIGIN_IGP, &[0x40, 2, 4, 9, 1, 0, 1], &NEXT_HOP]),
                &NLRI_10_1,
            ),
            (UPDATE_MESSAGE, update_error::MALFORMED_AS_PATH),
            None,
        ),
        (
            "as path segment overrun",
            update_with(
                &attrs(&[&ORIGIN_IGP, &[0x40, 2, 4, 2, 2, 0, 1], &NEXT_HOP]),
                &NLRI_10_1,
            ),
            (UPDATE_MESSAGE, update_error::MALFORMED_AS_PATH),
            None,
        ),
        (
            "communities length 5",
            update_with(
                &attrs(&[
                    &ORIGIN_IGP,
                    &EMPTY_AS_PATH,
                    &NEXT_HOP,
                    &[0xc0, 8, 5, 0, 0, 0, 0, 0],
                ]),
                &NLRI_10_1,
            ),
            (UPDATE_MESSAGE, update_error::ATTRIBUTE_LENGTH_ERROR),
            Some(vec![0xc0, 8, 5, 0, 0, 0, 0, 0]),
        ),
        (
            "med marked transitive",
            update_with(
                &attrs(&[
                    &ORIGIN_IGP,
                    &EMPTY_AS_PATH,
                    &NEXT_HOP,
                    &[0xc0, 4, 4, 0, 0, 0, 0],
                ]),
                &NLRI_10_1,
            ),
            (UPDATE_MESSAGE, update_error::ATTRIBUTE_FLAGS_ERROR),
            Some(vec![0xc0, 4, 4, 0, 0, 0, 0]),
        ),
        (
            "attribute overruns list",
            update_with(&attrs(&[&ORIGIN_IGP, &[0x40, 2, 9]]), &[]),
            (UPDATE_MESSAGE, update_error::MALFORMED_ATTRIBUTE_LIST),
            None,
        ),
        (
            "prefix length 33",
            update_with(
                &attrs(&[&ORIGIN_IGP, &EMPTY_AS_PATH, &NEXT_HOP]),
                &[33, 10, 0, 0, 0, 1],
            ),
            (UPDATE_MESSAGE, update_error::INVALID_NETWORK_FIELD),
            None,
        ),
        (
            "prefix overrun",
            update_with(
                &attrs(&[&ORIGIN_IGP, &EMPTY_AS_PATH, &NEXT_HOP]),
                &[24, 10, 0],
            ),
            (UPDATE_MESSAGE, update_error::INVALID_NETWORK_FIELD),
            None,
        ),
        (
            "mp_reach truncated",
            update_with(
                &attrs(&[&ORIGIN_IGP, &EMPTY_AS_PATH, &[0x80, 14, 3, 0, 2, 1]]),
                &[],
            ),
            (UPDATE_MESSAGE, update_error::OPTIONAL_ATTRIBUTE_ERROR),
            Some(vec![0x80, 14, 3, 0, 2, 1]),
        ),
        (
            "mp_reach without origin",
            update_with(
                &attrs(&[&EMPTY_AS_PATH, &[0x80, 14, 5, 0, 2, 1, 0, 0]]),
                &[],
            ),
            (UPDATE_MESSAGE, update_error::MISSING_WELL_KNOWN_ATTRIBUTE),
            Some(vec![attr_type::ORIGIN]),
        ),
        (
            "aggregator length in a 4-octet session",
            update_with(
                &attrs(&[
                    &ORIGIN_IGP,
                    &EMPTY_AS_PATH,
                    &NEXT_HOP,
                    &[0xc0, 7, 6, 0, 1, 10, 0, 0, 1],
                ]),
                &NLRI_10_1,
            ),
            (UPDATE_MESSAGE, update_error::ATTRIBUTE_LENGTH_ERROR),
            Some(vec![0xc0, 7, 6, 0, 1, 10, 0, 0, 1]),
        ),
    ];
    for (name, bytes, (code, subcode), data) in cases {
        let error = match message_length(&bytes) {
            Err(e) => e,
            Ok(_) => decode(&bytes, true).expect_err(name),
        };
        assert_eq!(
            (error.notification.code, error.notification.subcode),
            (code, subcode),
            "{name}: {error}"
        );
        if let Some(data) = data {
            assert_eq!(error.notification.data, data, "{name}: data field");
        }
    }
}

#[test]
fn two_octet_sessions_carry_as_trans() {
    let update = Update {
        attributes: vec![
            Attribute::new(AttributeValue::Origin(Origin::Igp)),
            Attribute::new(AttributeValue::AsPath(AsPath::sequence([
                4_200_000_000,
                65001,
            ]))),
            Attribute::new(AttributeValue::NextHop(Ipv4Addr::new(10, 0, 0, 1))),
        ],
        nlri: vec!["10.1.0.0/16".parse().unwrap()],
        ..Update::default()
    };
    let bytes = Message::Update(update).to_bytes(false).unwrap();
    let Message::Update(back) = decode(&bytes, false).unwrap() else {
        panic!()
    };
    assert_eq!(
        back.attribute(attr_type::AS_PATH),
        Some(&AttributeValue::AsPath(AsPath::sequence([
            u32::from(AS_TRANS),
            65001
        ])))
    );
}

#[test]
fn attributes_over_255_bytes_use_extended_length() {
    let communities: Vec<u32> = (0..100).collect();
    let update = Update {
        attributes: vec![
            Attribute::new(AttributeValue::Origin(Origin::Igp)),
            Attribute::new(AttributeValue::AsPath(AsPath::default())),
            Attribute::new(AttributeValue::NextHop(Ipv4Addr::new(10, 0, 0, 1))),
            Attribute::new(AttributeValue::Communities(communities.clone())),
        ],
        nlri: vec!["10.1.0.0/16".parse().unwrap()],
        ..Update::default()
    };
    let bytes = Message::Update(update).to_bytes(true).unwrap();
    let Message::Update(back) = decode(&bytes, true).unwrap() else {
        panic!()
    };
    let community = back
        .attributes
        .iter()
        .find(|a| a.value.type_code() == attr_type::COMMUNITIES)
        .unwrap();
    assert_ne!(community.flags & attr_flags::EXTENDED_LENGTH, 0);
    assert_eq!(community.value, AttributeValue::Communities(communities));
}

#[test]
fn oversized_messages_are_refused_not_truncated() {
    let update = Update {
        nlri: (0..2000u32)
            .map(|i| Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap())
            .collect(),
        ..Update::default()
    };
    let mut out = vec![1, 2, 3];
    assert!(matches!(
        Message::Update(update).encode(true, &mut out),
        Err(EncodeError::TooLong { .. })
    ));
    assert_eq!(out, vec![1, 2, 3], "nothing half-written");
}

#[test]
fn end_of_rib_markers_are_recognised() {
    for family in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
        let marker = Update::end_of_rib_marker(family);
        let bytes = Message::Update(marker).to_bytes(true).unwrap();
        let Message::Update(back) = decode(&bytes, true).unwrap() else {
            panic!()
        };
        assert_eq!(back.end_of_rib(), Some(family));
    }
    assert_eq!(
        Update {
            nlri: vec!["10.0.0.0/8".parse().unwrap()],
            ..Update::default()
        }
        .end_of_rib(),
        None
    );
}

// Property tests.

fn arb_v4net() -> impl Strategy<Value = Ipv4Net> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, l)| Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc())
}

fn arb_v6net() -> impl Strategy<Value = IpNet> {
    (any::<u128>(), 0u8..=128).prop_map(|(a, l)| {
        IpNet::V6(
            ipnet::Ipv6Net::new(std::net::Ipv6Addr::from(a), l)
                .unwrap()
                .trunc(),
        )
    })
}

fn arb_as_path(four_octet: bool) -> impl Strategy<Value = AsPath> {
    let asn = if four_octet {
        any::<u32>().boxed()
    } else {
        (0u32..=65535).boxed()
    };
    prop::collection::vec(
        (
            prop_oneof![
                Just(SegmentKind::Set),
                Just(SegmentKind::Sequence),
                Just(SegmentKind::ConfedSequence),
                Just(SegmentKind::ConfedSet)
            ],
            prop::collection::vec(asn, 1..8),
        )
            .prop_map(|(kind, asns)| AsSegment { kind, asns }),
        0..4,
    )
    .prop_map(|segments| AsPath { segments })
}

fn arb_update(four_octet: bool) -> impl Strategy<Value = Update> {
    let v4 = prop::collection::vec(arb_v4net(), 0..20);
    (
        prop::collection::vec(arb_v4net(), 0..20),
        v4,
        arb_as_path(four_octet),
        any::<u32>(),
        prop::option::of(any::<u32>()),
        prop::collection::vec(any::<u32>(), 0..5),
        prop::collection::vec(any::<(u32, u32, u32)>(), 0..3),
        prop::collection::vec(arb_v6net(), 0..10),
        prop::collection::vec(arb_v6net(), 0..10),
        prop::collection::vec(any::<u32>(), 0..3),
    )
        .prop_map(
            move |(
                withdrawn,
                nlri,
                as_path,
                nh,
                med,
                communities,
                large,
                reach6,
                unreach6,
                clusters,
            )| {
                let mut attributes = vec![
                    Attribute::new(AttributeValue::Origin(Origin::Incomplete)),
                    Attribute::new(AttributeValue::AsPath(as_path)),
                    Attribute::new(AttributeValue::NextHop(Ipv4Addr::from(
                        (nh & 0x7fff_ffff) | 0x0100_0000,
                    ))),
                ];
                if let Some(med) = med {
                    attributes.push(Attribute::new(AttributeValue::MultiExitDisc(med)));
                }
                if !communities.is_empty() {
                    attributes.push(Attribute::new(AttributeValue::Communities(communities)));
                }
                if !large.is_empty() {
                    attributes.push(Attribute::new(AttributeValue::LargeCommunities(
                        large
                            .into_iter()
                            .map(|(global_admin, local_1, local_2)| LargeCommunity {
                                global_admin,
                                local_1,
                                local_2,
                            })
                            .collect(),
                    )));
                }
                if !clusters.is_empty() {
                    attributes.push(Attribute::new(AttributeValue::OriginatorId(
                        Ipv4Addr::from(clusters[0]),
                    )));
                    attributes.push(Attribute::new(AttributeValue::ClusterList(
                        clusters.into_iter().map(Ipv4Addr::from).collect(),
                    )));
                }
                attributes.push(Attribute::new(AttributeValue::MpReach(MpReach {
                    family: Family::IPV6_UNICAST,
                    next_hop: vec![0x20; 32],
                    nlri: Nlri::Prefixes(reach6),
                })));
                attributes.push(Attribute::new(AttributeValue::MpUnreach(MpUnreach {
                    family: Family::IPV6_UNICAST,
                    nlri: Nlri::Prefixes(unreach6),
                })));
                attributes.push(Attribute::new(AttributeValue::Unknown {
                    type_code: 200,
                    data: vec![1, 2, 3],
                }));
                Update {
                    withdrawn,
                    attributes,
                    nlri,
                }
            },
        )
}

fn arb_open() -> impl Strategy<Value = Open> {
    (
        any::<u16>(),
        prop_oneof![Just(0u16), 3u16..],
        any::<u32>(),
        prop::collection::vec(
            prop_oneof![
                (any::<u16>(), any::<u8>())
                    .prop_map(|(afi, safi)| Capability::Multiprotocol(Family { afi, safi })),
                Just(Capability::RouteRefresh),
                any::<u32>().prop_map(Capability::FourOctetAs),
                (
                    0u8..16,
                    0u16..4096,
                    prop::collection::vec((any::<u16>(), any::<u8>(), any::<u8>()), 0..3)
                )
                    .prop_map(|(flags, restart_time, fams)| {
                        Capability::GracefulRestart(GracefulRestart {
                            flags,
                            restart_time,
                            families: fams
                                .into_iter()
                                .map(|(afi, safi, flags)| GracefulRestartFamily {
                                    family: Family { afi, safi },
                                    flags,
                                })
                                .collect(),
                        })
                    }),
                (128u8..=255, prop::collection::vec(any::<u8>(), 0..8))
                    .prop_map(|(code, data)| Capability::Unknown { code, data }),
            ],
            0..6,
        ),
        any::<bool>(),
    )
        .prop_map(|(my_as, hold_time, id, capabilities, per)| Open {
            my_as,
            hold_time,
            bgp_id: Ipv4Addr::from(id),
            parameter_per_capability: per && capabilities.len() > 1,
            capabilities,
        })
}

proptest! {
    #[test]
    fn updates_round_trip(update in arb_update(true)) {
        let message = Message::Update(update);
        if let Ok(bytes) = message.to_bytes(true) {
            prop_assert_eq!(decode(&bytes, true).unwrap(), message);
        }
    }

    #[test]
    fn two_octet_updates_round_trip(update in arb_update(false)) {
        let message = Message::Update(update);
        if let Ok(bytes) = message.to_bytes(false) {
            prop_assert_eq!(decode(&bytes, false).unwrap(), message);
        }
    }

    #[test]
    fn opens_round_trip(open in arb_open()) {
        let message = Message::Open(open);
        let bytes = message.to_bytes(true).unwrap();
        prop_assert_eq!(decode(&bytes, true).unwrap(), message);
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200), four in any::<bool>()) {
        let mut framed = MARKER.to_vec();
        framed.extend_from_slice(&((19 + bytes.len()) as u16).to_be_bytes());
        framed.extend_from_slice(&bytes);
        for input in [&bytes[..], &framed[..]] {
            let _ = message_length(input);
            if let Ok(message) = decode(input, four) {
                // Whatever decodes re-encodes to something that decodes the same.
                let again = message.to_bytes(four).unwrap();
                prop_assert_eq!(decode(&again, four).unwrap(), message);
            }
        }
    }

    #[test]
    fn mutated_captures_never_panic(index in any::<prop::sample::Index>(), position in any::<prop::sample::Index>(), value in any::<u8>()) {
        let all: Vec<&[u8]> = [BIRD_TO_GOBGP, GOBGP_TO_BIRD, BIRD_TO_FRR, FRR_TO_BIRD].into_iter().flat_map(split).collect();
        let mut bytes = all[index.index(all.len())].to_vec();
        let at = position.index(bytes.len());
        bytes[at] = value;
        if let Ok(message) = decode(&bytes, true) {
            let again = message.to_bytes(true).unwrap();
            prop_assert_eq!(decode(&again, true).unwrap(), message);
        }
    }
}
