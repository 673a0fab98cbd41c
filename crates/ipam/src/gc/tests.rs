use proptest::prelude::*;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pod_alloc(addr: &str, handle: &str, seq: u64, ns: &str, pod: &str, node: &str) -> GcAllocation {
    GcAllocation {
        ip: ip(addr),
        handle: Some(handle.to_owned()),
        sequence_number: seq,
        attrs: BTreeMap::from([
            (ATTR_NAMESPACE.to_owned(), ns.to_owned()),
            (ATTR_POD.to_owned(), pod.to_owned()),
            (ATTR_NODE.to_owned(), node.to_owned()),
        ]),
        cooling_down: false,
    }
}

fn live(nodes: &[&str], pods: &[(&str, &str, &[&str])]) -> LiveSet {
    LiveSet {
        nodes: nodes.iter().map(|n| n.to_string()).collect(),
        pods: pods
            .iter()
            .map(|(ns, p, ips)| {
                (
                    (ns.to_string(), p.to_string()),
                    ips.iter().map(|a| ip(a)).collect(),
                )
            })
            .collect(),
    }
}

fn block(cidr: &str, host: &str, empty: bool) -> GcBlock {
    GcBlock {
        cidr: cidr.parse().unwrap(),
        host: Some(host.to_owned()),
        empty,
    }
}

#[test]
fn a_leak_is_released_only_on_the_second_sighting() {
    let allocs = [
        pod_alloc("10.0.0.1", "h1", 5, "default", "gone", "n1"),
        pod_alloc("10.0.0.2", "h2", 5, "default", "alive", "n1"),
    ];
    let live = live(&["n1"], &[("default", "alive", &[])]);
    let first = plan(&GcState::default(), &allocs, &[], &live);
    assert!(first.release.is_empty());
    assert_eq!(first.suspected, vec![ip("10.0.0.1")]);
    let second = plan(&first.state, &allocs, &[], &live);
    assert_eq!(
        second.release,
        vec![ReleaseOptions {
            address: ip("10.0.0.1"),
            handle: Some("h1".into()),
            sequence_number: Some(5),
        }]
    );
    assert!(second.suspected.is_empty());
    assert_eq!(second.state.run, 2);
}

#[test]
fn reallocation_or_resurrection_between_runs_cancels_the_release() {
    let live_set = live(&["n1"], &[]);
    let first = plan(
        &GcState::default(),
        &[pod_alloc("10.0.0.1", "h1", 5, "ns", "p", "n1")],
        &[],
        &live_set,
    );
    // Reallocated to another pod (new sequence number), also gone.
    let second = plan(
        &first.state,
        &[pod_alloc("10.0.0.1", "h9", 6, "ns", "q", "n1")],
        &[],
        &live_set,
    );
    assert!(second.release.is_empty());
    assert_eq!(second.suspected, vec![ip("10.0.0.1")]);
    // The pod came back: no longer suspected at all.
    let back = live(&["n1"], &[("ns", "q", &["10.0.0.1"])]);
    let third = plan(
        &second.state,
        &[pod_alloc("10.0.0.1", "h9", 6, "ns", "q", "n1")],
        &[],
        &back,
    );
    assert!(third.release.is_empty() && third.state.suspects.is_empty());
}

#[test]
fn pod_with_other_addresses_no_longer_owns_this_one() {
    let l = live(&["n1"], &[("ns", "p", &["10.0.0.9"])]);
    let a = [pod_alloc("10.0.0.1", "h1", 1, "ns", "p", "n1")];
    let p = plan(&plan(&GcState::default(), &a, &[], &l).state, &a, &[], &l);
    assert_eq!(p.release.len(), 1);
}

#[test]
fn a_handle_goes_all_at_once_or_not_at_all() {
    let l = live(&["n1"], &[("ns", "alive", &[])]);
    let allocs = [
        pod_alloc("10.0.0.1", "h1", 1, "ns", "gone", "n1"),
        pod_alloc("10.0.0.2", "h1", 1, "ns", "alive", "n1"),
    ];
    let first = plan(&GcState::default(), &allocs, &[], &l);
    let second = plan(&first.state, &allocs, &[], &l);
    assert!(second.release.is_empty(), "h1 still has a valid address");
    assert_eq!(second.state.suspects.len(), 1);
}

#[test]
fn tunnel_addresses_follow_their_node_and_unknown_owners_are_kept() {
    let mut tunnel = pod_alloc("10.0.0.1", "vxlan-tunnel-addr-n2", 1, "", "", "n2");
    tunnel.attrs = BTreeMap::from([
        (ATTR_NODE.into(), "n2".into()),
        (ATTR_TYPE.into(), "vxlanTunnelAddress".into()),
    ]);
    let mut unknown = pod_alloc("10.0.0.2", "manual", 1, "", "", "n2");
    unknown.attrs.clear();
    let allocs = [tunnel, unknown];
    let l = live(&["n1"], &[]);
    let second = plan(
        &plan(&GcState::default(), &allocs, &[], &l).state,
        &allocs,
        &[],
        &l,
    );
    assert_eq!(
        second.release.iter().map(|r| r.address).collect::<Vec<_>>(),
        vec![ip("10.0.0.1")]
    );
    let l2 = live(&["n1", "n2"], &[]);
    assert!(
        plan(&second.state, &allocs[..1], &[], &l2)
            .state
            .suspects
            .is_empty()
    );
}

#[test]
fn gone_nodes_lose_their_blocks_after_two_runs() {
    let blocks = [
        block("10.0.0.0/26", "n1", false),
        block("10.0.0.64/26", "gone", true),
    ];
    let l = live(&["n1"], &[]);
    let first = plan(&GcState::default(), &[], &blocks, &l);
    assert!(first.release_nodes.is_empty());
    let second = plan(&first.state, &[], &blocks, &l);
    assert_eq!(second.release_nodes, vec!["gone".to_owned()]);
    // A gone node still holding a valid (unknown-owner) address is kept.
    let mut unknown = pod_alloc("10.0.0.65", "manual", 1, "", "", "gone");
    unknown.attrs = BTreeMap::from([(ATTR_NODE.into(), "gone".into())]);
    let held = plan(&first.state, &[unknown], &blocks, &l);
    assert!(held.release_nodes.is_empty());
}

#[test]
fn each_node_keeps_one_block() {
    let blocks = [
        block("10.0.0.0/26", "n1", true),
        block("10.0.0.64/26", "n1", true),
        block("10.0.0.128/26", "n2", false),
        block("10.0.0.192/26", "n2", true),
    ];
    let l = live(&["n1", "n2"], &[]);
    let first = plan(&GcState::default(), &[], &blocks, &l);
    assert!(first.release_blocks.is_empty());
    let second = plan(&first.state, &[], &blocks, &l);
    assert_eq!(
        second.release_blocks,
        vec![
            ("n1".to_owned(), "10.0.0.64/26".parse().unwrap()),
            ("n2".to_owned(), "10.0.0.192/26".parse().unwrap())
        ]
    );
}

fn arb_alloc() -> impl Strategy<Value = GcAllocation> {
    (0u8..32, 0u8..6, 0u64..3, 0u8..6, any::<bool>()).prop_map(|(host, h, seq, pod, cooling)| {
        GcAllocation {
            ip: IpAddr::from([10, 0, 0, host]),
            handle: Some(format!("h{h}")),
            sequence_number: seq,
            attrs: BTreeMap::from([
                (ATTR_NAMESPACE.to_owned(), "ns".to_owned()),
                (ATTR_POD.to_owned(), format!("p{pod}")),
                (ATTR_NODE.to_owned(), "n1".to_owned()),
            ]),
            cooling_down: cooling,
        }
    })
}

fn dedup(mut allocs: Vec<GcAllocation>) -> Vec<GcAllocation> {
    allocs.sort_by_key(|a| a.ip);
    allocs.dedup_by_key(|a| a.ip);
    allocs
}

proptest! {
    /// Whatever the input order, the plan is the same; and nothing is
    /// released that was not leaked, identically, on both runs.
    #[test]
    fn deterministic_and_only_twice_seen_leaks(
        run1 in prop::collection::vec(arb_alloc(), 0..20).prop_map(dedup),
        run2 in prop::collection::vec(arb_alloc(), 0..20).prop_map(dedup),
        alive in prop::collection::btree_set(0u8..6, 0..6),
    ) {
        let l = LiveSet {
            nodes: ["n1".to_owned()].into(),
            pods: alive.iter().map(|p| (("ns".to_owned(), format!("p{p}")), vec![])).collect(),
        };
        let first = plan(&GcState::default(), &run1, &[], &l);
        let second = plan(&first.state, &run2, &[], &l);
        let mut reversed = run2.clone();
        reversed.reverse();
        prop_assert_eq!(&plan(&first.state, &reversed, &[], &l), &second);
        let leaked = |a: &GcAllocation| !a.cooling_down && !alive.contains(&a.attrs["pod"][1..].parse::<u8>().unwrap());
        for r in &second.release {
            let now = run2.iter().find(|a| a.ip == r.address).unwrap();
            let before = run1.iter().find(|a| a.ip == r.address);
            prop_assert!(leaked(now));
            prop_assert!(before.is_some_and(|b| leaked(b) && b.handle == now.handle && b.sequence_number == now.sequence_number));
            prop_assert_eq!(r.sequence_number, Some(now.sequence_number));
            // Every address of the handle is leaked now.
            prop_assert!(run2.iter().filter(|a| a.handle == now.handle && !a.cooling_down).all(leaked));
        }
    }
}
