//! The plugin flow with its services replaced by test doubles: what is
//! recorded, what is rolled back, what DEL tolerates. No root needed.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use calico_cni::endpoint::{NoPodInfo, PodInfo};
use calico_cni::error::ErrorCode;
use calico_cni::ipam::CalicoIpam;
use calico_cni::plugin::{Services, cmd_add, cmd_check, cmd_del, cmd_gc, cmd_status, run};
use common::*;

struct World {
    store: MemoryStore,
    ipam: CalicoIpam<TestAllocator>,
    dataplane: FakeDataplane,
    pods: StaticPods,
}

impl World {
    fn new() -> Self {
        World {
            store: MemoryStore::default(),
            ipam: CalicoIpam::new(TestAllocator::default()),
            dataplane: FakeDataplane::default(),
            pods: StaticPods::default(),
        }
    }

    fn services(&self) -> Services<'_> {
        Services {
            ipam: &self.ipam,
            store: &self.store,
            dataplane: &self.dataplane,
            pods: &self.pods,
        }
    }

    fn held(&self) -> BTreeMap<String, Vec<std::net::IpAddr>> {
        self.ipam.allocator().held()
    }

    /// Nothing left anywhere: no addresses, endpoints or interfaces.
    fn assert_clean(&self) {
        assert!(
            self.held().is_empty(),
            "addresses still held: {:?}",
            self.held()
        );
        assert!(
            self.store.endpoint_names().is_empty(),
            "endpoints left: {:?}",
            self.store.endpoint_names()
        );
        assert!(
            self.dataplane.interfaces.lock().unwrap().is_empty(),
            "interfaces left"
        );
    }
}

const NETNS: &str = "/var/run/netns/cni-1111";

#[tokio::test]
async fn add_records_the_pod_and_returns_a_result() {
    let world = World::new();
    let inv = invocation(
        "ADD",
        "c0ffee",
        Some(NETNS),
        &pod_args("default", "web-0", "c0ffee"),
        &calico_conf("1.0.0"),
    );
    let result = cmd_add(&inv, &world.services()).await.unwrap();

    assert_eq!(
        result.interfaces[0].name, "cali0d7763386da",
        "SHA-1 of default.web-0"
    );
    assert_eq!(result.interfaces[1].name, "eth0");
    assert_eq!(result.interfaces[1].sandbox.as_deref(), Some(NETNS));
    assert_eq!(result.interfaces[1].mtu, Some(1440));
    assert_eq!(result.ips.len(), 1);
    assert_eq!(
        result.ips[0].address.to_string(),
        "10.65.0.1/32",
        "narrowed from the block's /26"
    );
    assert_eq!(result.ips[0].interface, Some(1));
    assert_eq!(
        result.routes.len(),
        1,
        "Calico's IPAM reports one route per address"
    );

    let endpoint = world
        .store
        .endpoint("default", "node--1-k8s-web--0-eth0")
        .expect("endpoint written");
    assert_eq!(endpoint.spec.orchestrator, "k8s");
    assert_eq!(endpoint.spec.pod, "web-0");
    assert_eq!(endpoint.spec.container_id, "c0ffee");
    assert_eq!(endpoint.spec.ip_networks, vec!["10.65.0.1/32"]);
    assert_eq!(endpoint.spec.interface_name, "cali0d7763386da");
    assert_eq!(endpoint.spec.mac, "02:00:00:00:00:01");
    assert_eq!(endpoint.spec.profiles, vec!["k8s-pod-network"]);
    assert_eq!(
        endpoint.metadata.labels["projectcalico.org/namespace"],
        "default"
    );
    assert_eq!(
        endpoint.metadata.labels["projectcalico.org/orchestrator"],
        "k8s"
    );
    assert!(
        world
            .store
            .profiles
            .lock()
            .unwrap()
            .contains_key("k8s-pod-network")
    );
    assert_eq!(
        world.held()["k8s-pod-network.c0ffee"],
        vec!["10.65.0.1".parse::<std::net::IpAddr>().unwrap()]
    );

    let spec =
        world.dataplane.interfaces.lock().unwrap()[&(NETNS.into(), "eth0".to_string())].clone();
    assert!(spec.host_routes);
    assert_eq!(spec.mtu, Some(1440));
    assert_eq!(
        spec.routes
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>(),
        vec!["0.0.0.0/0", "::/0"]
    );
}

#[tokio::test]
async fn run_prints_the_result_in_the_configured_version() {
    for (version, needle) in [
        ("0.3.1", "\"version\": \"4\""),
        ("1.1.0", "\"interface\": 1"),
    ] {
        let world = World::new();
        let inv = invocation("ADD", "c1", Some(NETNS), "", &calico_conf(version));
        let text = run(&inv, &world.services()).await.unwrap().unwrap();
        assert!(
            text.contains(&format!("\"cniVersion\": \"{version}\"")),
            "{text}"
        );
        assert!(text.contains(needle), "{version}: {text}");
    }
}

#[tokio::test]
async fn dual_stack_assigns_both_families() {
    let world = World::new();
    let mut conf = calico_conf("1.0.0");
    conf["ipam"]["assign_ipv6"] = "true".into();
    let inv = invocation("ADD", "c2", Some(NETNS), "", &conf);
    let result = cmd_add(&inv, &world.services()).await.unwrap();
    let addresses: Vec<String> = result.ips.iter().map(|ip| ip.address.to_string()).collect();
    assert_eq!(addresses, vec!["10.65.0.1/32", "fd00:65::1/128"]);
    // Not Kubernetes: the cni orchestrator's name and the container's veth.
    let endpoint = world
        .store
        .endpoint("default", "node--1-cni-c2-eth0")
        .unwrap();
    assert_eq!(endpoint.spec.interface_name, "calic2");
    assert_eq!(
        endpoint.spec.ip_networks,
        vec!["10.65.0.1/32", "fd00:65::1/128"]
    );
}

#[tokio::test]
async fn partial_assignment_is_given_back() {
    let world = World::new();
    world.ipam.allocator().fail_v6.store(true, Ordering::SeqCst);
    let mut conf = calico_conf("1.0.0");
    conf["ipam"]["assign_ipv6"] = "true".into();
    let inv = invocation("ADD", "c3", Some(NETNS), "", &conf);
    let error = cmd_add(&inv, &world.services()).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("no IPv6 address could be assigned"),
        "{error}"
    );
    world.assert_clean();
}

#[tokio::test]
async fn interface_failure_releases_the_addresses() {
    let world = World::new();
    world.dataplane.fail_add.store(true, Ordering::SeqCst);
    let inv = invocation(
        "ADD",
        "c4",
        Some(NETNS),
        &pod_args("default", "web-1", "c4"),
        &calico_conf("1.0.0"),
    );
    let error = cmd_add(&inv, &world.services()).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::Internal);
    assert!(
        error.msg.contains("setting up the pod's interface"),
        "{error}"
    );
    assert!(
        error.to_string().contains("injected interface failure"),
        "{error}"
    );
    world.assert_clean();
}

#[tokio::test]
async fn endpoint_write_failure_removes_the_interface_and_addresses() {
    let world = World::new();
    world.store.fail_apply.store(true, Ordering::SeqCst);
    let inv = invocation(
        "ADD",
        "c5",
        Some(NETNS),
        &pod_args("default", "web-2", "c5"),
        &calico_conf("1.0.0"),
    );
    let error = cmd_add(&inv, &world.services()).await.unwrap_err();
    assert_eq!(
        error.code,
        ErrorCode::TryAgainLater,
        "an unavailable datastore asks to retry"
    );
    assert!(
        error
            .msg
            .contains("writing WorkloadEndpoint default/node--1-k8s-web--2-eth0"),
        "{error}"
    );
    world.assert_clean();
    assert_eq!(world.dataplane.removals.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn profile_failure_undoes_everything() {
    let world = World::new();
    world.store.fail_profile.store(true, Ordering::SeqCst);
    let inv = invocation(
        "ADD",
        "c6",
        Some(NETNS),
        &pod_args("default", "web-3", "c6"),
        &calico_conf("1.0.0"),
    );
    let error = cmd_add(&inv, &world.services()).await.unwrap_err();
    assert!(
        error.msg.contains("creating profile k8s-pod-network"),
        "{error}"
    );
    world.assert_clean();
}

#[tokio::test]
async fn a_failed_rollback_is_reported_with_the_cause() {
    let world = World::new();
    world.dataplane.fail_add.store(true, Ordering::SeqCst);
    world
        .ipam
        .allocator()
        .fail_release
        .store(true, Ordering::SeqCst);
    let inv = invocation("ADD", "c7", Some(NETNS), "", &calico_conf("1.0.0"));
    let error = cmd_add(&inv, &world.services()).await.unwrap_err();
    assert!(
        error.msg.contains("setting up the pod's interface"),
        "{error}"
    );
    assert!(
        error
            .details
            .contains("rollback incomplete: releasing addresses of handle k8s-pod-network.c7"),
        "{}",
        error.details
    );
}

#[tokio::test]
async fn del_is_idempotent() {
    let world = World::new();
    let args = pod_args("default", "web-4", "c8");
    let conf = calico_conf("1.0.0");
    cmd_add(
        &invocation("ADD", "c8", Some(NETNS), &args, &conf),
        &world.services(),
    )
    .await
    .unwrap();
    let del = invocation("DEL", "c8", Some(NETNS), &args, &conf);
    cmd_del(&del, &world.services()).await.unwrap();
    world.assert_clean();
    cmd_del(&del, &world.services())
        .await
        .expect("second DEL succeeds");
    // containerd's last DEL comes without a namespace.
    cmd_del(
        &invocation("DEL", "c8", None, &args, &conf),
        &world.services(),
    )
    .await
    .expect("DEL without netns succeeds");
    world.assert_clean();
}

#[tokio::test]
async fn del_keeps_the_endpoint_of_a_newer_sandbox() {
    let world = World::new();
    let conf = calico_conf("1.0.0");
    let old_args = pod_args("default", "web-5", "old");
    let new_args = pod_args("default", "web-5", "new");
    cmd_add(
        &invocation("ADD", "old", Some("/var/run/netns/old"), &old_args, &conf),
        &world.services(),
    )
    .await
    .unwrap();
    // The pod's sandbox is recreated before the old one is deleted.
    cmd_add(
        &invocation("ADD", "new", Some("/var/run/netns/new"), &new_args, &conf),
        &world.services(),
    )
    .await
    .unwrap();
    cmd_del(
        &invocation("DEL", "old", Some("/var/run/netns/old"), &old_args, &conf),
        &world.services(),
    )
    .await
    .unwrap();
    let endpoint = world
        .store
        .endpoint("default", "node--1-k8s-web--5-eth0")
        .expect("kept");
    assert_eq!(endpoint.spec.container_id, "new");
    assert_eq!(
        world.held().keys().collect::<Vec<_>>(),
        vec!["k8s-pod-network.new"]
    );
}

#[tokio::test]
async fn del_runs_every_step_and_reports_all_failures() {
    let world = World::new();
    let conf = calico_conf("1.0.0");
    let args = pod_args("default", "web-6", "c9");
    cmd_add(
        &invocation("ADD", "c9", Some(NETNS), &args, &conf),
        &world.services(),
    )
    .await
    .unwrap();
    world.dataplane.fail_remove.store(true, Ordering::SeqCst);
    world
        .ipam
        .allocator()
        .fail_release
        .store(true, Ordering::SeqCst);
    let error = cmd_del(
        &invocation("DEL", "c9", Some(NETNS), &args, &conf),
        &world.services(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.code, ErrorCode::TryAgainLater);
    assert!(
        error.msg.contains("DEL of container c9: 2 steps failed"),
        "{error}"
    );
    assert!(
        error.details.contains("injected removal failure"),
        "{}",
        error.details
    );
    assert!(
        error.details.contains("injected release failure"),
        "{}",
        error.details
    );
    assert!(
        world.store.endpoint_names().is_empty(),
        "the endpoint step still ran"
    );
}

#[tokio::test]
async fn datastore_not_ready_asks_to_retry() {
    let world = World::new();
    world.store.not_ready.store(true, Ordering::SeqCst);
    let error = cmd_add(
        &invocation("ADD", "ca", Some(NETNS), "", &calico_conf("1.0.0")),
        &world.services(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.code, ErrorCode::TryAgainLater);
    assert!(error.msg.contains("not ready"), "{error}");
    world.assert_clean();
}

#[tokio::test]
async fn check_finds_what_changed() {
    let world = World::new();
    let args = pod_args("default", "web-7", "cb");
    let conf = calico_conf("1.0.0");
    let add = invocation("ADD", "cb", Some(NETNS), &args, &conf);
    let result = cmd_add(&add, &world.services()).await.unwrap();
    let mut check_conf = conf.clone();
    check_conf["prevResult"] = result.to_value("1.0.0".parse().unwrap()).unwrap();
    let check = invocation("CHECK", "cb", Some(NETNS), &args, &check_conf);
    cmd_check(&check, &world.services())
        .await
        .expect("fresh attachment checks out");

    world.store.endpoints.lock().unwrap().clear();
    world.ipam.allocator().handles.lock().unwrap().clear();
    let error = cmd_check(&check, &world.services()).await.unwrap_err();
    assert!(
        error
            .details
            .contains("WorkloadEndpoint default/node--1-k8s-web--7-eth0 is missing"),
        "{}",
        error.details
    );
    assert!(
        error
            .details
            .contains("no addresses are recorded for IPAM handle k8s-pod-network.cb"),
        "{}",
        error.details
    );

    let mut old = check_conf.clone();
    old["cniVersion"] = "0.3.1".into();
    old["prevResult"] = result.to_value("0.3.1".parse().unwrap()).unwrap();
    let error = cmd_check(
        &invocation("CHECK", "cb", Some(NETNS), &args, &old),
        &world.services(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.code, ErrorCode::IncompatibleVersion);
    assert_eq!(error.msg, "config version 0.3.1 does not allow CHECK");
    let error = cmd_check(
        &invocation("CHECK", "cb", Some(NETNS), &args, &conf),
        &world.services(),
    )
    .await
    .unwrap_err();
    assert!(error.msg.contains("prevResult"), "{error}");
}

#[tokio::test]
async fn status_and_gc() {
    let world = World::new();
    let conf = calico_conf("1.1.0");
    for id in ["keep", "stale"] {
        cmd_add(
            &invocation("ADD", id, Some(&format!("/var/run/netns/{id}")), "", &conf),
            &world.services(),
        )
        .await
        .unwrap();
    }
    let status = invocation("STATUS", "", None, "", &conf);
    cmd_status(&status, &world.services()).await.unwrap();
    world.store.not_ready.store(true, Ordering::SeqCst);
    let error = cmd_status(&status, &world.services()).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::NotAvailable);
    world.store.not_ready.store(false, Ordering::SeqCst);

    let mut gc_conf = conf.clone();
    gc_conf["cni.dev/valid-attachments"] =
        serde_json::json!([{"containerID": "keep", "ifname": "eth0"}]);
    cmd_gc(&invocation("GC", "", None, "", &gc_conf), &world.services())
        .await
        .unwrap();
    assert_eq!(
        world.held().keys().collect::<Vec<_>>(),
        vec!["k8s-pod-network.keep"]
    );

    let old = invocation("GC", "", None, "", &calico_conf("1.0.0"));
    assert_eq!(
        cmd_gc(&old, &world.services()).await.unwrap_err().code,
        ErrorCode::IncompatibleVersion
    );
}

#[tokio::test]
async fn pod_annotations_choose_addresses_and_mac() {
    let mut world = World::new();
    let mut conf = calico_conf("1.0.0");
    conf["policy"] = serde_json::json!({"type": "k8s"});
    conf["ipam"]["assign_ipv6"] = "true".into();
    world.pods.0.insert(
        ("prod".into(), "db-0".into()),
        PodInfo {
            labels: BTreeMap::from([("app".to_string(), "db".to_string())]),
            annotations: BTreeMap::from([
                (
                    "cni.projectcalico.org/ipAddrs".to_string(),
                    r#"["10.65.0.50"]"#.to_string(),
                ),
                (
                    "cni.projectcalico.org/hwAddr".to_string(),
                    "02:aa:bb:cc:dd:ee".to_string(),
                ),
            ]),
            profiles: vec!["kns.prod".into(), "ksa.prod.db".into()],
            service_account: "db".into(),
            ..Default::default()
        },
    );
    let inv = invocation(
        "ADD",
        "cc",
        Some(NETNS),
        &pod_args("prod", "db-0", "cc"),
        &conf,
    );
    let result = cmd_add(&inv, &world.services()).await.unwrap();
    assert_eq!(result.ips[0].address.to_string(), "10.65.0.50/32");
    assert_eq!(
        result.interfaces[1].mac.as_deref(),
        Some("02:aa:bb:cc:dd:ee")
    );
    let endpoint = world
        .store
        .endpoint("prod", "node--1-k8s-db--0-eth0")
        .unwrap();
    assert_eq!(endpoint.spec.profiles, vec!["kns.prod", "ksa.prod.db"]);
    assert_eq!(endpoint.spec.service_account_name, "db");
    assert_eq!(endpoint.metadata.labels["app"], "db");
    assert!(
        world.store.profiles.lock().unwrap().is_empty(),
        "policy k8s: no network profile"
    );

    // Both explicit-address annotations at once is a configuration error.
    let pod = world
        .pods
        .0
        .get_mut(&("prod".into(), "db-0".into()))
        .unwrap();
    pod.annotations.insert(
        "cni.projectcalico.org/ipAddrsNoIpam".into(),
        r#"["10.65.0.51"]"#.into(),
    );
    let inv = invocation(
        "ADD",
        "cd",
        Some("/var/run/netns/other"),
        &pod_args("prod", "db-0", "cd"),
        &conf,
    );
    let error = cmd_add(&inv, &world.services()).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidConfig);
    assert!(error.msg.contains("cannot be used together"), "{error}");
}

#[tokio::test]
async fn a_container_joining_a_second_network_keeps_its_interface() {
    let world = World::new();
    let first = calico_conf("1.0.0");
    cmd_add(
        &invocation("ADD", "ce", Some(NETNS), "", &first),
        &world.services(),
    )
    .await
    .unwrap();
    let mut second = first.clone();
    second["name"] = "second-net".into();
    let result = cmd_add(
        &invocation("ADD", "ce", Some(NETNS), "", &second),
        &world.services(),
    )
    .await
    .unwrap();
    assert_eq!(
        result.ips[0].address.to_string(),
        "10.65.0.1/32",
        "the existing address"
    );
    let endpoint = world
        .store
        .endpoint("default", "node--1-cni-ce-eth0")
        .unwrap();
    assert_eq!(
        endpoint.spec.profiles,
        vec!["k8s-pod-network", "second-net"]
    );
    assert_eq!(world.dataplane.interfaces.lock().unwrap().len(), 1);
}

#[test]
fn services_accept_no_pod_info() {
    let world = World::new();
    let services = Services {
        pods: &NoPodInfo,
        ..world.services()
    };
    let inv = invocation(
        "ADD",
        "cf",
        Some(NETNS),
        &pod_args("default", "x", "cf"),
        &calico_conf("1.0.0"),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let result = runtime.block_on(cmd_add(&inv, &services)).unwrap();
    assert_eq!(result.ips.len(), 1);
}

#[tokio::test]
async fn interface_settings_come_from_the_configuration() {
    let world = World::new();
    let mut conf = calico_conf("1.0.0");
    conf["num_queues"] = 4.into();
    conf["container_settings"] = serde_json::json!({"allow_ip_forwarding": true});
    conf["ipam"] = serde_json::json!({"type": "calico-ipam"});
    cmd_add(
        &invocation("ADD", "cq", Some(NETNS), "", &conf),
        &world.services(),
    )
    .await
    .unwrap();
    let spec =
        world.dataplane.interfaces.lock().unwrap()[&(NETNS.into(), "eth0".to_string())].clone();
    assert_eq!(spec.queues, Some(4));
    assert!(spec.allow_ip_forwarding);
    assert_eq!(spec.host_ifname, "calicq");
}
