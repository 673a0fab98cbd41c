//! Unit tests of the generator on hand-built programs.

use super::*;
use calico_nftables::Statement;
use calico_policy::program::{Chains, EndpointProgram, ProfileProgram};

fn endpoint(key: EndpointKey, iface: &str, addr: &str) -> EndpointProgram {
    EndpointProgram {
        key,
        interface_name: iface.into(),
        addresses: vec![addr.parse().unwrap()],
        normal: Chains::default(),
        untracked: Chains::default(),
        pre_dnat: Chains::default(),
        forward: Chains::default(),
        profiles: vec!["allow".into()],
    }
}

fn dataplane(endpoints: Vec<EndpointProgram>) -> Dataplane {
    let mut dp = Dataplane::default();
    for ep in endpoints {
        dp.endpoints.insert(ep.key.clone(), ep);
    }
    dp.profiles.insert(
        "allow".into(),
        ProfileProgram {
            name: "allow".into(),
            ingress: Vec::new(),
            egress: Vec::new(),
            missing: false,
        },
    );
    dp
}

#[test]
fn unusable_endpoints_are_reported_and_left_out() {
    let w = |name: &str| EndpointKey::workload("ns", name);
    let dp = dataplane(vec![
        endpoint(w("a"), "cali0000000000a", "10.0.0.1/32"),
        endpoint(w("b"), "cali0000000000a", "10.0.0.2/32"),
        endpoint(w("c"), "cali-name-much-too-long", "10.0.0.3/32"),
        endpoint(w("d"), "cali\"quote", "10.0.0.4/32"),
        endpoint(w("e"), "cali*", "10.0.0.5/32"),
        endpoint(EndpointKey::host("h1"), "", "192.0.2.1/32"),
        endpoint(EndpointKey::host("h2"), "*", "192.0.2.2/32"),
        endpoint(EndpointKey::host("h3"), "*", "192.0.2.3/32"),
    ]);
    let generation = generate_with_report(&dp, &DataplaneConfig::default());
    let reasons: Vec<(String, SkipReason)> = generation
        .skipped
        .iter()
        .map(|s| (s.endpoint.to_string(), s.reason.clone()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (
                "workloadendpoint ns/b".to_string(),
                SkipReason::DuplicateInterface { kept: w("a") }
            ),
            (
                "workloadendpoint ns/c".to_string(),
                SkipReason::UnusableInterface
            ),
            (
                "workloadendpoint ns/d".to_string(),
                SkipReason::UnusableInterface
            ),
            (
                "workloadendpoint ns/e".to_string(),
                SkipReason::UnusableInterface
            ),
            ("hostendpoint h1".to_string(), SkipReason::NoInterface),
            (
                "hostendpoint h3".to_string(),
                SkipReason::DuplicateInterface {
                    kept: EndpointKey::host("h2")
                }
            ),
        ]
    );
    assert!(generation.ruleset.validate().is_empty());
    let v4 = &generation.ruleset.tables[&TableId::new(Family::Ip, "calico")];
    let map = &v4.maps[&names::dispatch_map(names::FROM_WORKLOAD_DISPATCH)];
    assert_eq!(map.entries.len(), 1);
    assert!(v4.chains.contains_key("cali-fh-any-interface-at-all"));
    let message = generation.skipped[4].to_string();
    assert!(message.contains("no interface name"), "{message}");
}

#[test]
fn configured_marks_are_the_only_bits_used() {
    let dp = dataplane(vec![endpoint(
        EndpointKey::workload("ns", "a"),
        "cali0000000000a",
        "10.0.0.1/32",
    )]);
    let config = DataplaneConfig {
        marks: crate::Marks::from_mask(0xf00).unwrap(),
        ..Default::default()
    };
    let ruleset = generate(&dp, &config);
    let mut seen = 0u32;
    for table in ruleset.tables.values() {
        for chain in table.chains.values() {
            for rule in &chain.rules {
                for st in &rule.statements {
                    match st {
                        Statement::SetMark { mask, value } => {
                            assert_eq!(mask & !0xf00, 0, "{rule}");
                            seen |= mask | value;
                        }
                        Statement::Match(m) => {
                            if let Key::Mark { mask } = m.key {
                                assert_eq!(mask & !0xf00, 0, "{rule}");
                                seen |= mask;
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    assert_eq!(seen, 0x100 | 0x200 | 0x800);
}

#[test]
fn endpoint_chains_follow_the_program() {
    let key = EndpointKey::workload("ns", "a");
    let mut ep = endpoint(key, "cali0000000000a", "10.0.0.1/32");
    let policy = PolicyKey::global("p");
    ep.normal.ingress = vec![
        TierProgram {
            name: "t1".into(),
            default_action: TierAction::Pass,
            policies: vec![policy.clone(), PolicyKey::global("absent")],
        },
        TierProgram {
            name: "t2".into(),
            default_action: TierAction::Deny,
            policies: vec![policy.clone(), policy.clone()],
        },
    ];
    let mut dp = dataplane(vec![ep]);
    dp.policies.insert(
        policy.clone(),
        calico_policy::program::PolicyProgram {
            key: policy,
            tier: "t1".into(),
            ingress: Vec::new(),
            egress: Vec::new(),
        },
    );
    let ruleset = generate(&dp, &DataplaneConfig::default());
    let v4 = &ruleset.tables[&TableId::new(Family::Ip, "calico")];
    let to_pod = workload_chain(v4, "cali0000000000a", Direction::Ingress).unwrap();
    let rules: Vec<String> = v4.chains[to_pod]
        .rules
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        rules,
        vec![
            "ct state invalid drop",
            "meta mark set meta mark & 0xfff4ffff",
            // t1: the absent policy is skipped; default Pass: no drop.
            "jump cali-pi-gnp.p",
            "meta mark & 0x00010000 == 0x00010000 return",
            r#"meta mark set meta mark & 0xfffdffff comment "tier t2""#,
            "jump cali-pi-gnp.p",
            "meta mark & 0x00010000 == 0x00010000 return",
            "meta mark & 0x00020000 == 0x00000000 jump cali-pi-gnp.p",
            "meta mark & 0x00010000 == 0x00010000 return",
            r#"meta mark & 0x00020000 == 0x00000000 drop comment "end of tier t2: Deny""#,
            "jump cali-pri-allow",
            "meta mark & 0x00010000 == 0x00010000 return",
            r#"drop comment "no policy or profile allowed the packet""#,
        ]
    );
    assert_eq!(v4.chains["cali-pi-gnp.p"].rules.len(), 0);
    // Egress has no tiers: straight to the profile.
    let from_pod = workload_chain(v4, "cali0000000000a", Direction::Egress).unwrap();
    assert_eq!(v4.chains[from_pod].rules.len(), 5);
}

/// A policy or profile an unchanged endpoint names comes and goes: the
/// endpoint's chains change with it (a missing one is skipped), and the
/// patched generation stays equal to a whole one.
#[test]
fn patched_endpoint_chains_follow_the_policies_they_name() {
    let key = EndpointKey::workload("ns", "a");
    let mut ep = endpoint(key, "cali0000000000a", "10.0.0.1/32");
    let policy = PolicyKey::global("p");
    ep.normal.ingress = vec![TierProgram {
        name: "t1".into(),
        default_action: TierAction::Deny,
        policies: vec![policy.clone()],
    }];
    let mut dp = dataplane(vec![ep]);
    let program = calico_policy::program::PolicyProgram {
        key: policy.clone(),
        tier: "t1".into(),
        ingress: Vec::new(),
        egress: Vec::new(),
    };
    let config = DataplaneConfig::default();
    let mut generator = Generator::new(config.clone());
    let check = |generator: &mut Generator, dp: &Dataplane, dirty: Dirty| {
        assert_eq!(
            generator.generate(dp, &dirty),
            generate_with_report(dp, &config)
        );
    };
    check(&mut generator, &dp, Dirty::default());
    let policy_changed = || Dirty {
        policies: [policy.clone()].into(),
        ..Dirty::default()
    };
    dp.policies.insert(policy.clone(), program.clone());
    check(&mut generator, &dp, policy_changed());
    dp.policies.remove(&policy);
    check(&mut generator, &dp, policy_changed());
    dp.profiles.remove("allow");
    let profile_changed = Dirty {
        profiles: ["allow".to_string()].into(),
        ..Dirty::default()
    };
    check(&mut generator, &dp, profile_changed.clone());
    dp = dataplane(dp.endpoints.into_values().collect());
    check(&mut generator, &dp, profile_changed);
}

/// Workloads with the same program share their chains; a patched
/// generation drops a shared chain only with its last workload.
#[test]
fn workloads_with_the_same_program_share_chains() {
    let w = |name: &str| EndpointKey::workload("ns", name);
    let policy = PolicyKey::global("p");
    let tier = TierProgram {
        name: "default".into(),
        default_action: TierAction::Deny,
        policies: vec![policy.clone()],
    };
    let mut a = endpoint(w("a"), "cali0000000000a", "10.0.0.1/32");
    let mut b = endpoint(w("b"), "cali0000000000b", "10.0.0.2/32");
    let c = endpoint(w("c"), "cali0000000000c", "10.0.0.3/32");
    a.normal.ingress = vec![tier.clone()];
    b.normal.ingress = vec![tier];
    let mut dp = dataplane(vec![a, b, c]);
    dp.policies.insert(
        policy.clone(),
        calico_policy::program::PolicyProgram {
            key: policy,
            tier: "default".into(),
            ingress: Vec::new(),
            egress: Vec::new(),
        },
    );
    let config = DataplaneConfig::default();
    let id = TableId::new(Family::Ip, "calico");
    let chain = |ruleset: &Ruleset, iface: &str, direction| {
        workload_chain(&ruleset.tables[&id], iface, direction).map(str::to_string)
    };
    let prefixed = |ruleset: &Ruleset, prefix: &str| {
        ruleset.tables[&id]
            .chains
            .keys()
            .filter(|name| name.starts_with(prefix))
            .count()
    };

    let mut generator = Generator::new(config.clone());
    let first = generator.generate(&dp, &Dirty::everything()).ruleset;
    assert_eq!(first, generate(&dp, &config));
    let (to_a, to_b, to_c) = (
        chain(&first, "cali0000000000a", Direction::Ingress).unwrap(),
        chain(&first, "cali0000000000b", Direction::Ingress).unwrap(),
        chain(&first, "cali0000000000c", Direction::Ingress).unwrap(),
    );
    assert_eq!(to_a, to_b);
    assert_ne!(to_a, to_c);
    assert_eq!(prefixed(&first, "cali-tw-"), 2);
    // Egress is the same (profile only) for all three.
    assert_eq!(prefixed(&first, "cali-fw-"), 1);

    // `a` goes: the chain it shared with `b` stays, as it was.
    let gone = dp.endpoints.remove(&w("a")).unwrap();
    let dirty = Dirty {
        endpoints: [gone.key.clone()].into(),
        ..Dirty::default()
    };
    let second = generator.generate(&dp, &dirty).ruleset;
    assert_eq!(second, generate(&dp, &config));
    assert!(Arc::ptr_eq(
        &first.tables[&id].chains[&to_b],
        &second.tables[&id].chains[&to_b]
    ));
    // `b` goes too: its chain goes with it.
    let gone = dp.endpoints.remove(&w("b")).unwrap();
    let dirty = Dirty {
        endpoints: [gone.key.clone()].into(),
        ..Dirty::default()
    };
    let third = generator.generate(&dp, &dirty).ruleset;
    assert_eq!(third, generate(&dp, &config));
    assert!(!third.tables[&id].chains.contains_key(&to_b));
    assert_eq!(prefixed(&third, "cali-tw-"), 1);
}
