use chrono::TimeZone;

use super::*;
use crate::block::ReleaseOptions;
use crate::reserved::Reservations;

fn t(secs: i64) -> Time {
    chrono::Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn node(name: &str, vxlan: &str) -> Node {
    let mut n = Node::default();
    n.metadata.name = name.into();
    n.spec.ipv4_vxlan_tunnel_addr = vxlan.into();
    n
}

fn wep(ns: &str, name: &str, ips: &[&str]) -> WorkloadEndpoint {
    let mut w = WorkloadEndpoint::default();
    w.metadata.namespace = ns.into();
    w.metadata.name = name.into();
    w.spec.ip_networks = ips.iter().map(|s| s.to_string()).collect();
    w
}

/// A small cluster with one of every problem.
fn scenario() -> Check {
    let none = Reservations::none();
    let mut b = AllocationBlock::new_empty(
        "10.0.0.0/29".parse().unwrap(),
        Some("host:n1".into()),
        None,
        7,
    );
    // .0: a live pod.
    b.auto_assign(
        1,
        Some("h-live"),
        &attrs(&[("namespace", "default"), ("node", "n1"), ("pod", "web")]),
        &none,
    );
    // .1: a pod that is gone.
    b.auto_assign(
        1,
        Some("h-gone"),
        &attrs(&[("namespace", "default"), ("node", "n1"), ("pod", "old")]),
        &none,
    );
    // .2: released, cooling down.
    b.auto_assign(1, Some("h-cool"), &attrs(&[("node", "n1")]), &none);
    b.release(
        &[ReleaseOptions::address("10.0.0.2".parse().unwrap())],
        t(0),
        600,
    )
    .unwrap();
    // .3: n1's VXLAN tunnel address.
    b.auto_assign(
        1,
        Some("vxlan-tunnel-addr-n1"),
        &attrs(&[("node", "n1"), ("type", "vxlanTunnelAddress")]),
        &none,
    );
    // .4: borrowed by n2, handle record missing.
    b.auto_assign(
        1,
        Some("h-missing"),
        &attrs(&[("namespace", "default"), ("node", "n2"), ("pod", "db")]),
        &none,
    );
    let blocks = [b];
    let data = CheckData {
        blocks: &blocks,
        active_pools: vec!["10.0.0.0/24".parse().unwrap()],
        active_pool_text: vec!["10.0.0.0/24".into()],
        handles: vec![
            ("h-gone".into(), "11".into()),
            ("h-leaked".into(), "12".into()),
            ("h-live".into(), "13".into()),
            ("vxlan-tunnel-addr-n1".into(), "14".into()),
        ],
        affinities: vec![
            (
                "n1".into(),
                "10.0.0.0/29".parse().unwrap(),
                AffinityState::Confirmed,
            ),
            (
                "n2".into(),
                "10.0.0.8/29".parse().unwrap(),
                AffinityState::Pending,
            ),
        ],
        now: t(10),
    };
    let input = CheckInput {
        nodes: vec![node("n1", "10.0.0.3"), node("n2", "")],
        workload_endpoints: vec![
            wep("default", "web", &["10.0.0.0/32"]),
            wep("default", "db", &["10.0.0.4/32"]),
            wep("default", "ghost", &["10.0.0.6/32"]),
            wep("default", "outside", &["192.168.9.9/32"]),
        ],
        load_balancers: None,
        meta: ReportMeta {
            version: "v3.30.0".into(),
            cluster_guid: "guid-1".into(),
            cluster_type: "k8s,bgp".into(),
            cluster_info_revision: "99".into(),
            datastore_locked: true,
        },
    };
    check(&data, &input)
}

#[test]
fn finds_every_kind_of_problem() {
    let c = scenario();
    assert_eq!(
        c.leaked_ips
            .iter()
            .map(|(ip, _)| ip.as_str())
            .collect::<Vec<_>>(),
        ["10.0.0.1"]
    );
    assert_eq!(
        c.not_allocated,
        vec![(
            "10.0.0.6".to_owned(),
            vec!["Workload(default/ghost)".to_owned()]
        )]
    );
    assert_eq!(c.not_in_active_pool.len(), 1);
    assert_eq!(
        c.leaked_handles
            .iter()
            .map(|h| h.id.as_str())
            .collect::<Vec<_>>(),
        ["h-leaked"]
    );
    assert_eq!(c.missing_handles, ["h-missing"]);
    assert_eq!(c.orphaned_affinities.len(), 1);
    assert_eq!(c.orphaned_affinities[0].reason, "block does not exist");
    assert!(c.invalid_blocks.is_empty());
    assert_eq!(c.problems(), 5);
    let db = &c.report.allocations["10.0.0.4"][0];
    assert!(db.borrowed && db.in_use);
    assert!(c.report.allocations["10.0.0.2"][0].cooling_down);
}

#[test]
fn text_is_calicos() {
    let want = "\
Checking IPAM for inconsistencies...

Loading all IPAM blocks...
Found 1 IPAM blocks.
 IPAM block 10.0.0.0/29 affinity=host:n1:
IPAM blocks record 5 allocations.

Loading all IPAM pools...
  10.0.0.0/24
Found 1 active IP pools.

Loading all nodes.
Found 1 node tunnel IPs.

Loading all service load balancer IPs.
No configuration for LoadBalancer kubecontroller found, skipping service check

Loading all workload endpoints.
Found 4 workload IPs.
Workloads and nodes are using 5 IPs.

Loading all handles
Looking for top (up to 20) nodes by allocations...
  n1 has 4 allocations
  n2 has 1 allocations
Node with most allocations has 4; median is 1

Scanning for IPs that are allocated but not actually in use...
  10.0.0.1 leaked; attrs Main:h-gone Extra:namespace=default,node=n1,pod=old
Found 1 IPs that are allocated in IPAM but not actually in use.
Scanning for IPs that are in use by a workload or node but not allocated in IPAM...
  192.168.9.9 in use by Workload(default/outside) is not in any active IP pool.
  10.0.0.6 in use by Workload(default/ghost) and in active IPAM pool but has no IPAM allocation.
Found 1 in-use IPs that are not in active IP pools.
Found 1 in-use IPs that are in active IP pools but have no corresponding IPAM allocation.

Scanning for IPAM handles with no matching IPs...
Found 1 handles with no matching IPs (and 3 handles with matches).
Scanning for IPs with missing handle...
  h-missing is in use in a block but doesn't exist.
Found 1 handles mentioned in blocks with no matching handle resource.
Validating IPAMBlock structures...
Found 0 invalid IPAMBlocks.
Scanning for block affinities with no matching block or node...
  n2 affinity for 10.0.0.8/29 (pending): block does not exist.
Found 1 orphaned block affinities.
Check complete; found 5 problems.
";
    assert_eq!(scenario().render(false, true), want);
    let all = scenario().render(true, false);
    assert!(all.contains(
        "  10.0.0.0 allocated; attrs Main:h-live Extra:namespace=default,node=n1,pod=web\n"
    ));
    assert!(all.contains("  10.0.0.3 belongs to Node(n1)\n"));
    assert!(all.contains("  h-leaked doesn't have any active IPs.\n"));
}

#[test]
fn report_json_is_calicos_format() {
    let c = scenario();
    let json = c.report.to_json();
    assert!(json.starts_with("{\n  \"version\": \"v3.30.0\",\n  \"clusterGUID\": \"guid-1\",\n  \"datastoreLocked\": true,"));
    assert!(json.contains("\"leakedHandles\": [\n    {\n      \"ID\": \"h-leaked\",\n      \"UID\": null,\n      \"Revision\": \"12\"\n    }\n  ]"));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v["allocations"]["10.0.0.1"][0]["owners"],
        serde_json::Value::Null
    );
    assert_eq!(v["allocations"]["10.0.0.1"][0]["inUse"], false);
    assert_eq!(v["allocations"]["10.0.0.1"][0]["sequenceNumber"], 7);
    assert_eq!(
        v["allocations"]["10.0.0.0"][0]["owners"],
        serde_json::json!(["Workload(default/web)"])
    );
    assert_eq!(CheckReport::from_json(&json).unwrap(), c.report);
}

#[test]
fn corrupt_block_is_reported() {
    let mut b = AllocationBlock::new_empty("10.0.0.0/30".parse().unwrap(), None, None, 1);
    b.unallocated.push(0);
    let blocks = [b];
    let data = CheckData {
        blocks: &blocks,
        active_pools: vec![],
        active_pool_text: vec![],
        handles: vec![],
        affinities: vec![],
        now: t(0),
    };
    let c = check(&data, &CheckInput::default());
    assert_eq!(c.problems(), 1);
    assert!(c
        .render(false, false)
        .contains("  IPAMBlock BlockKey(cidr=10.0.0.0/30) is invalid: ordinal 0 appears more than once in Unallocated array\n"));
}
