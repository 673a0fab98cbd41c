//! The allocator against the embedded datastore, scenario by scenario.

mod common;

use std::collections::BTreeSet;

use calico_datastore::Backend;
use calico_ipam::{
    AssignIpArgs, AutoAssignArgs, BlockError, Ipam, IpamConfig, IpamError, PoolError,
    ReleaseOptions,
};
use calico_model::IpPoolAllowedUse;
use common::*;
use ipnet::IpNet;

fn args(host: &str, handle: &str, num4: usize) -> AutoAssignArgs {
    AutoAssignArgs {
        num4,
        handle: Some(handle.to_owned()),
        attrs: pod_attrs(host, handle),
        hostname: host.to_owned(),
        ..Default::default()
    }
}

#[tokio::test]
async fn assigns_from_a_claimed_block_and_releases_by_handle() {
    let (_dir, ds) = embedded().await;
    put_pool(&ds, "pool", "10.10.0.0/24", 26, |_| {}).await;
    put_node(&ds, "n1", &[]).await;
    let (ipam, _) = ipam_with_clock(ds.clone());

    let got = ipam
        .auto_assign(&args("n1", "k8s-pod-network.c1", 5))
        .await
        .unwrap();
    assert_eq!(got.v4.ips.len(), 5);
    assert!(
        got.v4.ips.iter().all(|n| n.prefix_len() == 26),
        "addresses carry the block's length"
    );
    let blocks: BTreeSet<IpNet> = got.v4.ips.iter().map(|n| n.trunc()).collect();
    assert_eq!(blocks.len(), 1, "one block serves the request");
    let block = *blocks.iter().next().unwrap();

    let stored = dump(&ds, "/calico/ipam/v2/").await;
    let aff_key = format!(
        "/calico/ipam/v2/host/n1/ipv4/block/{}",
        block.to_string().replace('/', "-")
    );
    assert_eq!(
        stored[&aff_key],
        serde_json::json!({"state": "confirmed", "deleted": false})
    );
    let block_json = &stored[&format!(
        "/calico/ipam/v2/assignment/ipv4/block/{}",
        block.to_string().replace('/', "-")
    )];
    assert_eq!(block_json["affinity"], "host:n1");
    assert_eq!(
        block_json["attributes"][0]["handle_id"],
        "k8s-pod-network.c1"
    );
    assert_eq!(block_json["attributes"][0]["secondary"]["node"], "n1");
    assert_eq!(
        stored["/calico/ipam/v2/handle/k8s-pod-network.c1"],
        serde_json::json!({"block": {block.to_string(): 5}, "deleted": false})
    );

    let mut by_handle = ipam.get_ips_by_handle("k8s-pod-network.c1").await.unwrap();
    by_handle.sort();
    let mut want = got.v4.addresses();
    want.sort();
    assert_eq!(by_handle, want);

    assert_eq!(
        ipam.release_by_handle("k8s-pod-network.c1").await.unwrap(),
        5
    );
    assert_eq!(
        ipam.release_by_handle("k8s-pod-network.c1").await.unwrap(),
        0,
        "idempotent"
    );
    assert!(
        ipam.get_ips_by_handle("k8s-pod-network.c1")
            .await
            .unwrap()
            .is_empty()
    );
    let stored = dump(&ds, "/calico/ipam/v2/").await;
    assert!(
        !stored.contains_key("/calico/ipam/v2/handle/k8s-pod-network.c1"),
        "handle deleted"
    );
    assert!(
        stored.contains_key(&aff_key),
        "the host keeps its (now empty) block"
    );
}

#[tokio::test]
async fn second_request_reuses_the_hosts_block_and_ipv6_works() {
    let (_dir, ds) = embedded().await;
    put_pool(&ds, "v4", "10.20.0.0/16", 0, |_| {}).await;
    put_pool(&ds, "v6", "fd00:20::/48", 0, |_| {}).await;
    put_node(&ds, "n1", &[]).await;
    let (ipam, _) = ipam_with_clock(ds.clone());
    let mut a = args("n1", "h1", 1);
    a.num6 = 2;
    let first = ipam.auto_assign(&a).await.unwrap();
    assert_eq!((first.v4.ips.len(), first.v6.ips.len()), (1, 2));
    assert_eq!(first.v6.ips[0].prefix_len(), 122);
    let second = ipam
        .auto_assign(&AutoAssignArgs {
            num6: 1,
            ..args("n1", "h2", 1)
        })
        .await
        .unwrap();
    assert_eq!(first.v4.ips[0].trunc(), second.v4.ips[0].trunc());
    assert_eq!(first.v6.ips[0].trunc(), second.v6.ips[0].trunc());
    let all: BTreeSet<_> = first
        .addresses()
        .into_iter()
        .chain(second.addresses())
        .collect();
    assert_eq!(all.len(), 5);
}

#[tokio::test]
async fn full_block_leads_to_a_second_claim_until_the_limit() {
    let (_dir, ds) = embedded().await;
    put_pool(&ds, "pool", "10.30.0.0/24", 29, |_| {}).await;
    put_node(&ds, "n1", &[]).await;
    let (ipam, _) = ipam_with_clock(ds.clone());
    ipam.set_config(&IpamConfig {
        strict_affinity: true,
        max_blocks_per_host: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    let got = ipam.auto_assign(&args("n1", "h1", 11)).await.unwrap();
    assert_eq!(got.v4.ips.len(), 11);
    let blocks: BTreeSet<IpNet> = got.v4.ips.iter().map(|n| n.trunc()).collect();
    assert_eq!(blocks.len(), 2);

    let err = ipam.auto_assign(&args("n1", "h2", 6)).await.unwrap_err();
    assert!(
        matches!(err.error, IpamError::BlockLimit { limit: 2 }),
        "{err:?}"
    );
    assert_eq!(
        err.assigned.v4.ips.len(),
        5,
        "what fitted is reported for cleanup"
    );
    assert!(err.assigned.v4.messages[0].contains("limit of 2 blocks reached"));
}

#[tokio::test]
async fn borrowing_only_without_strict_affinity() {
    let (_dir, ds) = embedded().await;
    // Two /29 blocks in the pool.
    put_pool(&ds, "small", "10.40.0.0/28", 29, |_| {}).await;
    put_node(&ds, "a", &[]).await;
    put_node(&ds, "b", &[]).await;
    let (ipam, _) = ipam_with_clock(ds.clone());

    let a = ipam.auto_assign(&args("a", "ha", 16)).await.unwrap();
    assert_eq!(a.v4.ips.len(), 16, "host a claims both blocks");
    let freed = a.v4.ips[3].addr();
    let out = ipam
        .release_ips(&[ReleaseOptions::address(freed)])
        .await
        .unwrap();
    assert_eq!(out.released(), 1);

    ipam.set_config(&IpamConfig {
        strict_affinity: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let strict = ipam.auto_assign(&args("b", "hb", 1)).await.unwrap();
    assert!(strict.v4.ips.is_empty());
    assert_eq!(
        strict.v4.partial_fulfillment_error().unwrap(),
        "Assigned 0 out of 1 requested IPv4 addresses; No more free affine blocks and strict affinity enabled"
    );

    ipam.set_config(&IpamConfig::default()).await.unwrap();
    let borrowed = ipam.auto_assign(&args("b", "hb", 2)).await.unwrap();
    assert_eq!(
        borrowed.v4.addresses(),
        vec![freed],
        "b borrows the one free address in a's block"
    );
    assert_eq!(
        borrowed.v4.partial_fulfillment_error().unwrap(),
        "Assigned 1 out of 2 requested IPv4 addresses; No IPs available in pools: [10.40.0.0/28]"
    );
    let blocks = dump(&ds, "/calico/ipam/v2/assignment/").await;
    assert!(
        blocks.values().all(|b| b["affinity"] == "host:a"),
        "borrowing does not move the block"
    );
}

#[tokio::test]
async fn reserved_addresses_are_never_handed_out() {
    let (_dir, ds) = embedded().await;
    put_pool(&ds, "pool", "10.50.0.0/28", 28, |_| {}).await;
    put_node(&ds, "n1", &[]).await;
    put_reservation(&ds, "edge", &["10.50.0.0/30", "10.50.0.15"]).await;
    let (ipam, _) = ipam_with_clock(ds.clone());
    let got = ipam.auto_assign(&args("n1", "h", 16)).await.unwrap();
    let addrs: BTreeSet<_> = got.v4.addresses().into_iter().collect();
    assert_eq!(addrs.len(), 11, "16 minus 5 reserved");
    for r in [
        "10.50.0.0",
        "10.50.0.1",
        "10.50.0.2",
        "10.50.0.3",
        "10.50.0.15",
    ] {
        assert!(!addrs.contains(&ip(r)), "{r} is reserved");
    }
}

#[tokio::test]
async fn assign_specific_ip_claims_its_block() {
    let (_dir, ds) = embedded().await;
    put_pool(&ds, "pool", "10.60.0.0/24", 26, |s| {
        s.allowed_uses = vec![IpPoolAllowedUse::Workload];
    })
    .await;
    put_node(&ds, "n1", &[]).await;
    let (ipam, _) = ipam_with_clock(ds.clone());
    let req = AssignIpArgs {
        ip: ip("10.60.0.77"),
        handle: Some("vxlan-tunnel-addr-n1".into()),
        attrs: Default::default(),
        hostname: "n1".into(),
        intended_use: None,
    };
    ipam.assign_ip(&req).await.unwrap();
    let stored = dump(&ds, "/calico/ipam/v2/").await;
    assert!(stored.contains_key("/calico/ipam/v2/host/n1/ipv4/block/10.60.0.64-26"));
    assert!(matches!(
        ipam.assign_ip(&req).await,
        Err(IpamError::Block(BlockError::AlreadyAssigned { .. }))
    ));
    let tunnel = AssignIpArgs {
        ip: ip("10.60.0.78"),
        intended_use: Some(IpPoolAllowedUse::Tunnel),
        ..req.clone()
    };
    assert!(matches!(
        ipam.assign_ip(&tunnel).await,
        Err(IpamError::UseNotAllowed { .. })
    ));
    let outside = AssignIpArgs {
        ip: ip("10.99.0.1"),
        ..req.clone()
    };
    assert!(matches!(
        ipam.assign_ip(&outside).await,
        Err(IpamError::NotInPool(_))
    ));
    assert_eq!(
        ipam.get_ips_by_handle("vxlan-tunnel-addr-n1")
            .await
            .unwrap(),
        vec![ip("10.60.0.77")]
    );
}

#[tokio::test]
async fn released_address_is_not_reused_during_the_cooldown() {
    let (_dir, ds) = embedded().await;
    put_pool(&ds, "tiny", "10.70.0.0/30", 30, |_| {}).await;
    put_node(&ds, "n1", &[]).await;
    let (ipam, clock) = ipam_with_clock(ds.clone());
    ipam.set_config(&IpamConfig {
        ip_cooldown_seconds: 60,
        ..Default::default()
    })
    .await
    .unwrap();
    let all = ipam.auto_assign(&args("n1", "h1", 4)).await.unwrap();
    assert_eq!(all.v4.ips.len(), 4);
    ipam.release_by_handle("h1").await.unwrap();
    let during = ipam.auto_assign(&args("n1", "h2", 1)).await.unwrap();
    assert!(during.v4.ips.is_empty(), "every address is cooling down");
    clock.advance(chrono::Duration::seconds(61));
    let after = ipam.auto_assign(&args("n1", "h2", 1)).await.unwrap();
    assert_eq!(
        after.v4.addresses(),
        vec![ip("10.70.0.0")],
        "the longest-free address first"
    );
}

#[tokio::test]
async fn stale_release_is_refused() {
    let (_dir, ds) = embedded().await;
    put_pool(&ds, "pool", "10.80.0.0/24", 26, |_| {}).await;
    put_node(&ds, "n1", &[]).await;
    let (ipam, _) = ipam_with_clock(ds.clone());
    let got = ipam.auto_assign(&args("n1", "h1", 1)).await.unwrap();
    let addr = got.v4.ips[0].addr();
    let stale = ReleaseOptions {
        address: addr,
        handle: Some("h1".into()),
        sequence_number: Some(12345),
    };
    let out = ipam.release_ips(&[stale]).await.unwrap();
    assert_eq!(out.errors.len(), 1);
    assert!(matches!(
        out.errors[0].1,
        IpamError::Block(BlockError::SequenceMismatch { .. })
    ));
    assert_eq!(
        ipam.get_ips_by_handle("h1").await.unwrap(),
        vec![addr],
        "still assigned"
    );
    let wrong_handle = ReleaseOptions {
        address: addr,
        handle: Some("h2".into()),
        sequence_number: None,
    };
    assert_eq!(
        ipam.release_ips(&[wrong_handle])
            .await
            .unwrap()
            .errors
            .len(),
        1
    );
    let not_there = ipam
        .release_ips(&[ReleaseOptions::address(ip("10.80.0.200"))])
        .await
        .unwrap();
    assert_eq!(not_there.not_allocated, vec![ip("10.80.0.200")]);
}

#[tokio::test]
async fn pools_follow_node_and_namespace_selectors() {
    let (_dir, ds) = embedded().await;
    put_pool(&ds, "rack-a", "10.90.0.0/24", 26, |s| {
        s.node_selector = "rack == 'a'".into()
    })
    .await;
    put_pool(&ds, "team-x", "10.91.0.0/24", 26, |s| {
        s.namespace_selector = "team == 'x'".into()
    })
    .await;
    put_node(&ds, "in-a", &[("rack", "a")]).await;
    put_node(&ds, "in-b", &[("rack", "b")]).await;
    let (ipam, _) = ipam_with_clock(ds.clone());

    let got = ipam.auto_assign(&args("in-a", "h1", 1)).await.unwrap();
    assert!(got.v4.ips[0].addr().to_string().starts_with("10.90."));

    let err = ipam.auto_assign(&args("in-b", "h2", 1)).await.unwrap_err();
    assert!(
        matches!(err.error, IpamError::Pool(PoolError::NoPoolsForNode(ref n)) if n == "in-b"),
        "{err:?}"
    );

    let mut ns = args("in-b", "h3", 1);
    ns.namespace_labels = Some([("team".to_owned(), "x".to_owned())].into());
    let got = ipam.auto_assign(&ns).await.unwrap();
    assert!(got.v4.ips[0].addr().to_string().starts_with("10.91."));

    let mut explicit = args("in-b", "h4", 1);
    explicit.ipv4_pools = vec!["10.90.0.0/24".parse().unwrap()];
    let got = ipam.auto_assign(&explicit).await.unwrap();
    assert!(
        got.v4.ips[0].addr().to_string().starts_with("10.90."),
        "requested pools ignore selectors"
    );

    let missing = ipam.auto_assign(&args("ghost", "h5", 1)).await.unwrap_err();
    assert!(matches!(missing.error, IpamError::NodeNotFound(_)));
}

#[tokio::test]
async fn releasing_host_affinities_deletes_empty_blocks_and_unbinds_the_rest() {
    let (_dir, ds) = embedded().await;
    put_pool(&ds, "pool", "10.95.0.0/24", 28, |_| {}).await;
    put_node(&ds, "n1", &[]).await;
    let (ipam, _) = ipam_with_clock(ds.clone());
    let got = ipam.auto_assign(&args("n1", "h1", 20)).await.unwrap();
    assert_eq!(got.v4.ips.len(), 20);
    // Empty the first block entirely.
    let first_block = got.v4.ips[0].trunc();
    let first: Vec<_> = got
        .v4
        .ips
        .iter()
        .filter(|n| n.trunc() == first_block)
        .map(|n| ReleaseOptions::address(n.addr()))
        .collect();
    assert_eq!(ipam.release_ips(&first).await.unwrap().released(), 16);

    let strict = ipam.release_host_affinities("n1", true).await.unwrap();
    assert_eq!(strict.released, vec![first_block]);
    assert_eq!(strict.not_empty.len(), 1);

    let all = ipam.release_host_affinities("n1", false).await.unwrap();
    assert_eq!(all.released.len(), 1);
    let stored = dump(&ds, "/calico/ipam/v2/").await;
    assert!(
        !stored
            .keys()
            .any(|k| k.starts_with("/calico/ipam/v2/host/")),
        "{stored:#?}"
    );
    let blocks: Vec<_> = stored
        .iter()
        .filter(|(k, _)| k.contains("/assignment/"))
        .collect();
    assert_eq!(blocks.len(), 1, "the empty block is deleted");
    assert_eq!(blocks[0].1["affinity"], serde_json::Value::Null);
    // Releasing the rest of a non-affine block deletes it.
    assert_eq!(ipam.release_by_handle("h1").await.unwrap(), 4);
    assert!(dump(&ds, "/calico/ipam/v2/assignment/").await.is_empty());
}

#[tokio::test]
async fn config_rules_and_storage() {
    let (_dir, ds) = embedded().await;
    let ipam = Ipam::new(ds.clone());
    assert_eq!(ipam.get_config().await.unwrap(), IpamConfig::default());
    let bad = IpamConfig {
        max_blocks_per_host: 3,
        ..Default::default()
    };
    assert_eq!(
        ipam.set_config(&bad).await.unwrap_err().to_string(),
        "invalid IPAM configuration: MaxBlocksPerHost requires StrictAffinity to be enabled"
    );
    let neither = IpamConfig {
        auto_allocate_blocks: false,
        ..Default::default()
    };
    assert!(ipam.set_config(&neither).await.is_err());
    let good = IpamConfig {
        strict_affinity: true,
        max_blocks_per_host: 3,
        ..Default::default()
    };
    ipam.set_config(&good).await.unwrap();
    assert_eq!(ipam.get_config().await.unwrap(), good);
    let raw = ds.get("/calico/ipam/v2/config").await.unwrap().unwrap();
    assert_eq!(
        String::from_utf8(raw.value).unwrap(),
        r#"{"strict_affinity":true,"auto_allocate_blocks":true,"maxBlocksPerHost":3}"#
    );
}

/// Records written by Calico itself (an etcd datastore Calico has been
/// using) are read and extended in place.
#[tokio::test]
async fn continues_a_datastore_calico_wrote() {
    let (_dir, ds) = embedded().await;
    put_pool(&ds, "default-ipv4-ippool", "192.168.0.0/16", 26, |_| {}).await;
    put_node(&ds, "calico-1", &[]).await;
    let block = r#"{"cidr":"192.168.5.0/26","affinity":"host:calico-1","allocations":[0,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null],"unallocated":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63],"attributes":[{"handle_id":"k8s-pod-network.old","secondary":{"namespace":"kube-system","node":"calico-1","pod":"coredns-1"}}],"deleted":false}"#;
    ds.put(
        "/calico/ipam/v2/assignment/ipv4/block/192.168.5.0-26",
        block.as_bytes(),
    )
    .await
    .unwrap();
    // Old Calico versions wrote affinities with an empty value.
    ds.put(
        "/calico/ipam/v2/host/calico-1/ipv4/block/192.168.5.0-26",
        b"",
    )
    .await
    .unwrap();
    ds.put(
        "/calico/ipam/v2/handle/k8s-pod-network.old",
        br#"{"block":{"192.168.5.0/26":1}}"#,
    )
    .await
    .unwrap();
    let (ipam, _) = ipam_with_clock(ds.clone());
    let got = ipam
        .auto_assign(&args("calico-1", "k8s-pod-network.new", 1))
        .await
        .unwrap();
    assert_eq!(got.v4.addresses(), vec![ip("192.168.5.1")]);
    assert_eq!(
        ipam.get_ips_by_handle("k8s-pod-network.old").await.unwrap(),
        vec![ip("192.168.5.0")]
    );
    assert_eq!(
        ipam.release_by_handle("k8s-pod-network.old").await.unwrap(),
        1
    );
}

#[tokio::test]
async fn stale_handles_of_a_node_are_released() {
    let (_dir, ds) = embedded().await;
    put_pool(&ds, "pool", "10.96.0.0/24", 26, |_| {}).await;
    put_node(&ds, "n1", &[]).await;
    put_node(&ds, "n2", &[]).await;
    let (ipam, _) = ipam_with_clock(ds.clone());
    for (node, h) in [
        ("n1", "k8s-pod-network.a"),
        ("n1", "k8s-pod-network.b"),
        ("n1", "vxlan-tunnel-addr-n1"),
        ("n2", "k8s-pod-network.c"),
    ] {
        ipam.auto_assign(&args(node, h, 1)).await.unwrap();
    }
    let keep = ["k8s-pod-network.a".to_owned()].into();
    let released = ipam
        .release_handles_except("n1", "k8s-pod-network.", &keep)
        .await
        .unwrap();
    assert_eq!(released, vec!["k8s-pod-network.b".to_owned()]);
    for (h, left) in [
        ("k8s-pod-network.a", 1),
        ("k8s-pod-network.b", 0),
        ("vxlan-tunnel-addr-n1", 1),
        ("k8s-pod-network.c", 1),
    ] {
        assert_eq!(ipam.get_ips_by_handle(h).await.unwrap().len(), left, "{h}");
    }
}
