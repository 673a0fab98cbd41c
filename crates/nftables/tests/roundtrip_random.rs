//! Property: for any valid ruleset the generator could build, what nft
//! stores and lists back reads into the same value (so repair never sees
//! drift that is not there). Random rules and sets are applied in a scratch
//! namespace and read back. Needs root.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use calico_nftables::{
    BaseChain, BlockingNft, Chain, CtState, DataType, Family, Hook, IpFamily, Key, Log, Map,
    Policy, PortProto, Reconciler, Rhs, Rule, Ruleset, Set, Statement, Table, TableId, Transaction,
    Value, Verdict,
};
use common::{NftNetns, calico};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn v4_net() -> impl Strategy<Value = Value> {
    (
        any::<u32>(),
        prop::sample::select(vec![0u8, 8, 16, 23, 24, 30, 31, 32]),
    )
        .prop_map(|(a, len)| {
            // Keep addresses in a few /8s so that sets overlap and merge often.
            let a = (a & 0x00ff_ffff) | (10 + (a >> 30)) << 24;
            Value::Net(IpNet::V4(
                Ipv4Net::new(Ipv4Addr::from(a), len).unwrap().trunc(),
            ))
        })
}

fn v4_range() -> impl Strategy<Value = Value> {
    (any::<u16>(), 1u32..600).prop_map(|(a, n)| {
        let lo = 0x0a00_0000 + u32::from(a);
        Value::AddrRange(
            IpAddr::V4(Ipv4Addr::from(lo)),
            IpAddr::V4(Ipv4Addr::from(lo + n)),
        )
    })
}

fn v6_net() -> impl Strategy<Value = Value> {
    (
        any::<u64>(),
        prop::sample::select(vec![0u8, 32, 48, 64, 120, 127, 128]),
    )
        .prop_map(|(a, len)| {
            let addr = Ipv6Addr::from((0xfd00u128 << 112) | (u128::from(a) << 8));
            Value::Net(IpNet::V6(Ipv6Net::new(addr, len).unwrap().trunc()))
        })
}

fn port() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0u32..70).prop_map(|p| Value::Int(p + 1000)),
        (0u32..70, 0u32..20).prop_map(|(p, n)| Value::Range(p + 1000, p + 1000 + n)),
    ]
}

fn ifname() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        "eth0", "lo", "cali1234", "cali*", "tap*", "veth-a.b", "x",
    ])
    .prop_map(Value::name)
}

fn small_int(max: u32) -> impl Strategy<Value = Value> {
    (0..=max).prop_map(Value::Int)
}

fn proto() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![1u32, 6, 17, 47, 58, 132]).prop_map(Value::Int)
}

fn ct_state() -> impl Strategy<Value = Value> {
    prop::sample::subsequence(vec![1u8, 2, 4, 8, 64], 1..=3)
        .prop_map(|bits| Value::CtState(CtState(bits.into_iter().fold(0, |a, b| a | b))))
}

/// A value for `key`, intervals included.
fn value_for(key: &Key) -> BoxedStrategy<Value> {
    match key {
        Key::Iifname | Key::Oifname => ifname().boxed(),
        Key::Saddr(IpFamily::V4) | Key::Daddr(IpFamily::V4) => {
            prop_oneof![3 => v4_net(), 1 => v4_range()].boxed()
        }
        Key::Saddr(IpFamily::V6) | Key::Daddr(IpFamily::V6) => v6_net().boxed(),
        Key::L4Proto => proto().boxed(),
        Key::Sport(_) | Key::Dport(_) => port().boxed(),
        Key::IcmpType(_) | Key::IcmpCode(_) => small_int(255).boxed(),
        Key::CtState => ct_state().boxed(),
        Key::Mark { mask } => {
            let mask = *mask;
            any::<u32>().prop_map(move |v| Value::Int(v & mask)).boxed()
        }
        Key::Concat(_) => unreachable!("concatenations are only matched against named sets"),
    }
}

/// The named set each single key can be looked up in.
fn set_for(key: &Key) -> Option<&'static str> {
    Some(match key {
        Key::Iifname | Key::Oifname => "s_if",
        Key::Saddr(IpFamily::V4) | Key::Daddr(IpFamily::V4) => "s_v4",
        Key::Saddr(IpFamily::V6) | Key::Daddr(IpFamily::V6) => "s_v6",
        Key::Sport(_) | Key::Dport(_) => "s_ports",
        Key::L4Proto => "s_proto",
        Key::Mark { mask: u32::MAX } => "s_mark",
        _ => return None,
    })
}

fn rhs_for(key: Key) -> BoxedStrategy<(Key, Rhs)> {
    let one = value_for(&key).prop_map(Rhs::One);
    let many = prop::collection::vec(value_for(&key), 1..5).prop_map(Rhs::any_of);
    let k = key.clone();
    match (set_for(&key), &key) {
        (_, Key::CtState) => one.prop_map(move |r| (k.clone(), r)).boxed(),
        (Some(set), _) => prop_oneof![2 => one, 2 => many, 1 => Just(Rhs::set(set))]
            .prop_map(move |r| (k.clone(), r))
            .boxed(),
        (None, _) => prop_oneof![one, many]
            .prop_map(move |r| (k.clone(), r))
            .boxed(),
    }
}

/// The keys one rule may combine without nft finding them contradictory:
/// one address family, one transport protocol.
fn keys_for(family: IpFamily, ports: Option<PortProto>) -> Vec<Key> {
    let mut keys = vec![
        Key::Iifname,
        Key::Oifname,
        Key::Saddr(family),
        Key::Daddr(family),
        Key::CtState,
        Key::MARK,
        Key::Mark { mask: 0x00ff_0000 },
    ];
    match ports {
        Some(proto) => {
            keys.extend([Key::Sport(proto), Key::Dport(proto)]);
            if proto == PortProto::Th {
                keys.push(Key::L4Proto);
            }
        }
        // ICMP fields without an l4proto match: a protocol set next to an
        // ICMP field is a contradiction nft refuses.
        None => keys.extend([Key::IcmpType(family), Key::IcmpCode(family)]),
    }
    keys
}

fn statement_tail() -> impl Strategy<Value = Vec<Statement>> {
    let log = (
        prop::option::of("[a-z: -]{1,12}"),
        prop::option::of(0u16..4),
    )
        .prop_map(|(prefix, group)| Statement::Log(Log { prefix, group }));
    let mark = (any::<u32>(), any::<u32>()).prop_filter_map("empty mask", |(mask, value)| {
        let mask = mask | 1;
        Some(Statement::SetMark {
            mask,
            value: value & mask,
        })
    });
    let mark_all = any::<u32>().prop_map(|v| Statement::SetMark {
        mask: u32::MAX,
        value: v,
    });
    let mark_set = (0u32..32).prop_map(|b| Statement::SetMark {
        mask: 1 << b,
        value: 1 << b,
    });
    let verdict = prop_oneof![
        Just(Statement::Verdict(Verdict::Accept)),
        Just(Statement::Verdict(Verdict::Drop)),
        Just(Statement::Verdict(Verdict::Return)),
        Just(Statement::Verdict(Verdict::jump("target"))),
        Just(Statement::Verdict(Verdict::goto("target"))),
        Just(Statement::Vmap {
            key: Key::Iifname,
            map: "m_if".into()
        }),
        Just(Statement::Vmap {
            key: Key::Oifname,
            map: "m_if".into()
        }),
    ];
    (
        any::<bool>(),
        prop::option::of(log),
        prop::option::of(prop_oneof![mark, mark_all, mark_set]),
        prop::option::of(verdict),
    )
        .prop_map(|(counter, log, mark, verdict)| {
            let mut out = Vec::new();
            if counter {
                out.push(Statement::Counter);
            }
            out.extend(log);
            out.extend(mark);
            out.extend(verdict);
            out
        })
}

fn rule(families: Vec<IpFamily>) -> impl Strategy<Value = Rule> {
    let family = prop::sample::select(families);
    let ports = prop::option::of(prop::sample::select(vec![
        PortProto::Tcp,
        PortProto::Udp,
        PortProto::Sctp,
        PortProto::Th,
    ]));
    (family, ports)
        .prop_flat_map(|(family, ports)| {
            let keys = keys_for(family, ports);
            let matches =
                prop::collection::vec(prop::sample::select(keys).prop_flat_map(rhs_for), 0..4);
            let named_port = prop::option::weighted(0.15, Just(()));
            let named_port = named_port.prop_map(move |n| {
                n.filter(|_| family == IpFamily::V4 && ports == Some(PortProto::Th))
            });
            (
                matches,
                named_port,
                statement_tail(),
                prop::option::of("[A-Za-z0-9 .:-]{1,20}"),
            )
        })
        .prop_map(|(matches, named_port, tail, comment)| {
            let mut statements: Vec<Statement> = Vec::new();
            let mut seen_keys = BTreeSet::new();
            let mut l4proto_literal = false;
            for (key, rhs) in matches {
                // One match per key (nft would find two contradictory) and no
                // transport match after a literal l4proto (nft folds them).
                if !seen_keys.insert(key.clone()) {
                    continue;
                }
                if l4proto_literal
                    && (matches!(
                        key,
                        Key::Sport(_) | Key::Dport(_) | Key::IcmpType(_) | Key::IcmpCode(_)
                    ))
                {
                    continue;
                }
                if key == Key::L4Proto && matches!(rhs, Rhs::One(_)) {
                    l4proto_literal = true;
                }
                statements.push(Statement::Match(calico_nftables::Match {
                    key,
                    negate: false,
                    rhs,
                }));
            }
            if named_port.is_some() && !l4proto_literal {
                statements.push(Statement::Match(calico_nftables::Match::eq(
                    Key::Concat(vec![
                        Key::Daddr(IpFamily::V4),
                        Key::L4Proto,
                        Key::Dport(PortProto::Th),
                    ]),
                    Rhs::set("s_np"),
                )));
            }
            statements.extend(tail);
            if statements.is_empty() {
                statements.push(Statement::Counter);
            }
            Rule {
                statements,
                comment,
            }
        })
}

/// Negates some matches: a separate pass so the strategy above stays readable.
fn negations() -> impl Strategy<Value = Vec<bool>> {
    prop::collection::vec(prop::bool::weighted(0.3), 8)
}

/// Elements for an interval set, without overlaps (nft refuses them).
fn disjoint(values: Vec<Value>) -> Vec<Value> {
    let mut kept: Vec<(u128, u128, Value)> = Vec::new();
    for v in values.into_iter().map(|v| v.canonical_element()) {
        let (lo, hi) = bounds(&v);
        if kept.iter().all(|(l, h, _)| hi < *l || lo > *h) {
            kept.push((lo, hi, v));
        }
    }
    kept.into_iter().map(|(_, _, v)| v).collect()
}

fn bounds(v: &Value) -> (u128, u128) {
    match v {
        Value::Net(IpNet::V4(n)) => (
            u32::from(n.network()).into(),
            u32::from(n.broadcast()).into(),
        ),
        Value::Net(IpNet::V6(n)) => (n.network().into(), n.broadcast().into()),
        Value::AddrRange(IpAddr::V4(a), IpAddr::V4(b)) => {
            (u32::from(*a).into(), u32::from(*b).into())
        }
        Value::Int(n) => ((*n).into(), (*n).into()),
        Value::Range(a, b) => ((*a).into(), (*b).into()),
        Value::Name(n) => match n.strip_suffix('*') {
            // Good enough for the fixed names used here: a wildcard covers
            // every name starting with its prefix.
            Some(p) => (name_num(p, 0), name_num(p, 0xff)),
            None => (name_num(n, 0), name_num(n, 0)),
        },
        _ => (0, u128::MAX),
    }
}

fn name_num(s: &str, fill: u8) -> u128 {
    let mut buf = [fill; 16];
    buf[..s.len()].copy_from_slice(s.as_bytes());
    u128::from_be_bytes(buf)
}

fn table(families: Vec<IpFamily>) -> impl Strategy<Value = Table> {
    let sets = (
        prop::collection::vec(prop_oneof![v4_net(), v4_range()], 0..12),
        prop::collection::vec(v6_net(), 0..6),
        prop::collection::vec(port(), 0..8),
        prop::collection::vec(ifname(), 0..4),
        prop::collection::vec(proto(), 0..3),
        prop::collection::vec(any::<u32>(), 0..3),
        prop::collection::vec((any::<u8>(), proto(), 1u32..65535), 0..5),
    );
    let rules = prop::collection::vec((rule(families), negations()), 1..10);
    let base = (
        prop::sample::select(vec![-300i32, -150, -5, 0, 10]),
        any::<bool>(),
    );
    (sets, rules, base).prop_map(
        |((v4s, v6s, ports, ifs, protos, marks, nps), rules, (prio, drop))| {
            let mut table = Table::new();
            table.sets.insert(
                "s_v4".into(),
                std::sync::Arc::new(
                    Set::new(DataType::Ipv4Addr, true).with_elements(disjoint(v4s)),
                ),
            );
            table.sets.insert(
                "s_v6".into(),
                std::sync::Arc::new(
                    Set::new(DataType::Ipv6Addr, true).with_elements(disjoint(v6s)),
                ),
            );
            table.sets.insert(
                "s_ports".into(),
                std::sync::Arc::new(
                    Set::new(DataType::InetService, true).with_elements(disjoint(ports)),
                ),
            );
            table.sets.insert(
                "s_if".into(),
                std::sync::Arc::new(Set::new(DataType::IfName, true).with_elements(disjoint(ifs))),
            );
            table.sets.insert(
                "s_proto".into(),
                std::sync::Arc::new(Set::new(DataType::InetProto, false).with_elements(protos)),
            );
            table.sets.insert(
                "s_mark".into(),
                std::sync::Arc::new(
                    Set::new(DataType::Mark, false)
                        .with_elements(marks.into_iter().map(Value::Int)),
                ),
            );
            table.sets.insert(
                "s_np".into(),
                std::sync::Arc::new(
                    Set::new(
                        DataType::Concat(vec![
                            DataType::Ipv4Addr,
                            DataType::InetProto,
                            DataType::InetService,
                        ]),
                        false,
                    )
                    .with_elements(nps.into_iter().map(|(a, p, port)| {
                        Value::Concat(vec![
                            Value::addr(Ipv4Addr::new(10, 1, 2, a)),
                            p,
                            Value::Int(port),
                        ])
                    })),
                ),
            );
            table.maps.insert(
                "m_if".into(),
                std::sync::Arc::new(Map::new(DataType::IfName, false).with_entries([
                    (Value::name("eth0"), Verdict::jump("target")),
                    (Value::name("cali1"), Verdict::goto("target")),
                    (Value::name("lo"), Verdict::Accept),
                ])),
            );
            table.chains.insert(
                "target".into(),
                std::sync::Arc::new(Chain::regular([Rule::new().accept()])),
            );
            let rules = rules
                .into_iter()
                .map(|(mut rule, negate)| {
                    let mut n = negate.into_iter();
                    for s in &mut rule.statements {
                        if let Statement::Match(m) = s {
                            if !matches!(m.key, Key::Concat(_)) && n.next().unwrap_or(false) {
                                m.negate = true;
                            }
                        }
                    }
                    rule
                })
                .collect::<Vec<_>>();
            let policy = if drop { Policy::Drop } else { Policy::Accept };
            table
                .chains
                .insert("c".into(), std::sync::Arc::new(Chain::regular(rules)));
            table.chains.insert(
                "base".into(),
                std::sync::Arc::new(Chain::base(
                    BaseChain::filter(Hook::Output, prio, policy),
                    [Rule::new().jump("c")],
                )),
            );
            table
        },
    )
}

#[test]
fn random_rulesets_read_back_equal_inet() {
    let ns = NftNetns::new("nft-prop");
    round_trip(
        ns.reconciler([calico()]),
        calico(),
        vec![IpFamily::V4, IpFamily::V6],
    );
}

#[test]
fn random_rulesets_read_back_equal_ip() {
    let id = TableId::new(Family::Ip, "calico");
    let ns = NftNetns::new("nft-prop");
    round_trip(ns.reconciler([id.clone()]), id, vec![IpFamily::V4]);
}

#[test]
fn random_rulesets_read_back_equal_ip6() {
    let id = TableId::new(Family::Ip6, "calico");
    let ns = NftNetns::new("nft-prop");
    round_trip(ns.reconciler([id.clone()]), id, vec![IpFamily::V6]);
}

/// The same through nft's library in process: what the node agent uses.
#[test]
fn random_rulesets_read_back_equal_through_the_library() {
    let ns = NftNetns::new("nft-lib");
    round_trip(
        ns.library_reconciler([calico()]),
        calico(),
        vec![IpFamily::V4, IpFamily::V6],
    );
}

/// Applies random tables of family `id.family` whose rules use the
/// address families `families`, and reads each back.
fn round_trip<N: BlockingNft>(reconciler: Reconciler<N>, id: TableId, families: Vec<IpFamily>) {
    let reconciler = std::cell::RefCell::new(reconciler);
    let (total, dropped) = (std::cell::Cell::new(0usize), std::cell::Cell::new(0usize));
    let cases: u32 = std::env::var("NFT_PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&table(families), |table| {
            let mut desired = Ruleset::new().with_table(id.clone(), table);
            // The generator combines statements freely; drop the rules that
            // validation refuses (it explains nft's rewrites) and count them.
            let problems = desired.validate();
            let bad: BTreeSet<usize> = problems.iter().filter_map(|p| p.location.rule).collect();
            prop_assert!(
                problems
                    .iter()
                    .all(|p| p.location.object.as_deref() == Some("chain c")
                        && p.location.rule.is_some()),
                "generated an invalid ruleset: {problems:?}"
            );
            let chain = desired
                .table_mut(id.clone())
                .chains
                .get_mut("c")
                .map(std::sync::Arc::make_mut)
                .expect("chain c");
            total.set(total.get() + chain.rules.len());
            dropped.set(dropped.get() + bad.len());
            chain.rules = std::mem::take(&mut chain.rules)
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !bad.contains(&(i + 1)))
                .map(|(_, r)| r)
                .collect();
            let problems = desired.validate();
            prop_assert!(problems.is_empty(), "still invalid: {problems:?}");
            let mut reconciler = reconciler.borrow_mut();
            let before = reconciler
                .read_blocking()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            reconciler.repair_blocking(&desired).map_err(|e| {
                let mut chain = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    chain.push_str(&format!(": {s}"));
                    source = s.source();
                }
                TestCaseError::fail(format!(
                    "applying: {chain}\n{}",
                    Transaction::diff_observed(&before, &desired).render()
                ))
            })?;
            let observed = reconciler
                .read_blocking()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(
                observed.is_complete(),
                "unreadable: {:?}",
                observed.unreadable
            );
            let got = &observed.ruleset.tables[&id.clone()];
            let want = &desired.tables[&id.clone()];
            prop_assert_eq!(&got.sets, &want.sets);
            prop_assert_eq!(&got.maps, &want.maps);
            for (name, chain) in &want.chains {
                let have = &got.chains[name];
                prop_assert_eq!(have.base, chain.base);
                for (i, (h, w)) in have.rules.iter().zip(&chain.rules).enumerate() {
                    prop_assert_eq!(
                        h,
                        w,
                        "rule {} of chain {}: wrote `{}`, kernel has `{}`",
                        i + 1,
                        name,
                        w,
                        h
                    );
                }
                prop_assert_eq!(have.rules.len(), chain.rules.len());
            }
            Ok(())
        })
        .unwrap();
    assert!(
        dropped.get() * 5 < total.get(),
        "validation refused {} of {} generated rules: the generator has drifted from valid rules",
        dropped.get(),
        total.get()
    );
}
