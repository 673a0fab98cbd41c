//! End to end on one simulated node (root): the `calico-node` binary runs
//! against a node namespace with two pods plumbed as the CNI plugin plumbs
//! them, reading a real datastore that the test writes with calico-client.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use calico_client::Client;
use calico_datastore::{AnyBackend, Backend};
use calico_model::{
    Action, GlobalNetworkPolicy, Kind, NetworkPolicy, ObjectMeta, PolicyType, Rule,
};
use support::{
    AgentProcess, EchoServer, Node, Store, http_get, list_table, namespace_profile, routes,
    runtime, tcp_connect, tcp_reaches, wait_for, workload_endpoint,
};

const NODE: &str = "node1";
const NS: &str = "demo";
const PROBE: Duration = Duration::from_millis(300);

/// A node with pods `a` (10.65.0.2) and `b` (10.65.0.3), their endpoints
/// and namespace profile in the datastore.
struct Cluster {
    rt: tokio::runtime::Runtime,
    store: Store,
    client: Client<AnyBackend>,
    node: Node,
}

impl Cluster {
    fn new(store: Store) -> Cluster {
        let rt = runtime();
        let client = store.client(&rt);
        let mut node = Node::new("n");
        node.add_pod("a", "cali0000000000a", "10.65.0.2".parse().unwrap());
        node.add_pod("b", "cali0000000000b", "10.65.0.3".parse().unwrap());
        rt.block_on(client.create(namespace_profile(NS).into()))
            .expect("creating the namespace profile");
        for pod in &node.pods {
            rt.block_on(client.create(workload_endpoint(NODE, NS, pod).into()))
                .expect("creating a workload endpoint");
        }
        Cluster {
            rt,
            store,
            client,
            node,
        }
    }

    fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = self.store.env();
        env.push(("NODENAME".into(), NODE.into()));
        env.push(("FELIX_HEALTHENABLED".into(), "true".into()));
        env.push(("FELIX_PROMETHEUSMETRICSENABLED".into(), "true".into()));
        env.push(("FELIX_NFTABLESREFRESHINTERVAL".into(), "1".into()));
        env.push(("FELIX_ROUTEREFRESHINTERVAL".into(), "1".into()));
        env.push(("LOG_LEVEL".into(), "info".into()));
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    fn start_agent(&self, extra: &[(&str, &str)]) -> AgentProcess {
        let netns = self.node.path().display().to_string();
        let agent = AgentProcess::start(&["--netns", &netns], &self.env(extra));
        self.wait_ready(&agent);
        agent
    }

    fn wait_ready(&self, agent: &AgentProcess) {
        let health: SocketAddr = "127.0.0.1:9099".parse().unwrap();
        wait_for(
            Duration::from_secs(30),
            "the agent to report ready",
            || matches!(http_get(&self.node.ns, health, "/readiness"), Ok((200, _))),
            || agent.log(),
        );
    }

    fn pod(&self, i: usize) -> &support::Pod {
        &self.node.pods[i]
    }

    fn apply(&self, resource: impl Into<calico_model::resource::AnyResource>) {
        self.rt
            .block_on(self.client.apply(resource.into()))
            .expect("applying a resource");
    }

    fn metrics(&self) -> String {
        let address: SocketAddr = "0.0.0.0:9091".parse().unwrap();
        let loopback = SocketAddr::new("127.0.0.1".parse().unwrap(), address.port());
        http_get(&self.node.ns, loopback, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    }
}

/// A policy in the default tier denying all ingress to pod `b`.
fn deny_to_b() -> NetworkPolicy {
    let mut policy = NetworkPolicy {
        metadata: ObjectMeta::namespaced(NS, "deny-b"),
        ..NetworkPolicy::default()
    };
    policy.spec.selector = "app == 'b'".into();
    policy.spec.types = vec![PolicyType::Ingress];
    policy.spec.ingress = vec![Rule::new(Action::Deny)];
    policy
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn policy_is_enforced_repaired_and_bad_resources_skipped_on_etcd() {
    let cluster = Cluster::new(Store::etcd());
    let server = EchoServer::start(cluster.pod(1), 8080);
    let agent = cluster.start_agent(&[]);
    let (a, target) = (cluster.pod(0), server.address);

    // No policy: the namespace profile allows.
    wait_for(
        Duration::from_secs(10),
        "a to reach b with no policy",
        || tcp_reaches(a, target, PROBE),
        || agent.log(),
    );

    // A deny policy takes effect within the latency bound...
    let written = Instant::now();
    cluster.apply(deny_to_b());
    let denied = wait_for(
        Duration::from_secs(5),
        "the deny policy to block a → b",
        || !tcp_reaches(a, target, Duration::from_millis(100)),
        || agent.log(),
    );
    eprintln!("deny enforced {denied:?} after the write (probe timeout included)");
    assert!(written.elapsed() < Duration::from_secs(5));

    // ... and deleting it restores traffic.
    cluster
        .rt
        .block_on(
            cluster
                .client
                .delete(Kind::NetworkPolicy, NS, "deny-b", None),
        )
        .expect("deleting the policy");
    wait_for(
        Duration::from_secs(5),
        "traffic to flow again after the delete",
        || tcp_reaches(a, target, PROBE),
        || agent.log(),
    );

    // Drift: the table deleted behind the agent's back comes back within
    // the refresh interval (1 s here).
    cluster
        .node
        .exec("nft delete table ip calico")
        .expect("deleting the agent's table");
    let repaired = wait_for(
        Duration::from_secs(5),
        "the deleted table to be repaired",
        || {
            list_table(&cluster.node, "ip")
                .is_some_and(|t| t.contains("\"cali0000000000b\" : goto cali-tw-"))
        },
        || agent.log(),
    );
    eprintln!("table repaired {repaired:?} after deletion");

    // A policy with an invalid selector, written raw, is skipped; a valid
    // deny written after it is still enforced.
    let backend = cluster.store.backend(&cluster.rt);
    let bad = r#"{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"broken"},"spec":{"tier":"default","selector":"app ==== 'b'","ingress":[{"action":"Allow"}],"types":["Ingress"]}}"#;
    cluster
        .rt
        .block_on(backend.put(
            "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/broken",
            bad.as_bytes(),
        ))
        .expect("writing the malformed policy");
    cluster
        .rt
        .block_on(backend.put(
            "/calico/resources/v3/projectcalico.org/networkpolicies/demo/garbage",
            b"{this is not json",
        ))
        .expect("writing a garbage value");
    let mut deny_all = GlobalNetworkPolicy {
        metadata: ObjectMeta::named("deny-b-global"),
        ..GlobalNetworkPolicy::default()
    };
    deny_all.spec.selector = "app == 'b'".into();
    deny_all.spec.types = vec![PolicyType::Ingress];
    deny_all.spec.ingress = vec![Rule::new(Action::Deny)];
    cluster.apply(deny_all);
    wait_for(
        Duration::from_secs(5),
        "the valid policy to be enforced next to the broken ones",
        || !tcp_reaches(a, target, Duration::from_millis(100)),
        || agent.log(),
    );
    let log = agent.log();
    assert!(
        log.contains("globalnetworkpolicies/broken"),
        "the bad policy is logged with its key:\n{log}"
    );
    assert!(
        log.contains("networkpolicies/demo/garbage"),
        "the garbage value is logged with its key:\n{log}"
    );

    // Health and metrics.
    let health: SocketAddr = "127.0.0.1:9099".parse().unwrap();
    assert_eq!(
        http_get(&cluster.node.ns, health, "/liveness").unwrap().0,
        200
    );
    // The binary's own probes, as Calico's manifests run them.
    let netns = cluster.node.path().display().to_string();
    for probe in ["-felix-live", "-felix-ready"] {
        let mut run = AgentProcess::start(&[probe, "--netns", &netns], &[]);
        let status = run.wait(Duration::from_secs(10)).expect("the probe ends");
        assert!(status.success(), "{probe}: {}", run.log());
    }
    let elsewhere = support::Node::new("x");
    let other = elsewhere.path().display().to_string();
    let mut run = AgentProcess::start(&["-felix-ready", "--netns", &other], &[]);
    let status = run.wait(Duration::from_secs(10)).expect("the probe ends");
    assert!(!status.success(), "no agent there: the probe fails");
    let metrics = cluster.metrics();
    assert_eq!(
        metric(&metrics, "felix_active_local_endpoints"),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "felix_resync_state"),
        Some(3.0),
        "{metrics}"
    );
    assert!(metric(&metrics, "calico_node_rejected_resources").unwrap_or(0.0) >= 2.0);
    assert!(
        metric(&metrics, "felix_int_dataplane_apply_time_seconds_count").unwrap_or(0.0) >= 3.0,
        "{metrics}"
    );
    assert!(metric(&metrics, "felix_active_local_policies").unwrap_or(0.0) >= 1.0);
}

#[test]
fn routes_follow_workloads_and_affine_blocks() {
    let cluster = Cluster::new(Store::embedded());
    let backend = cluster.store.backend(&cluster.rt);
    cluster
        .rt
        .block_on(backend.put(
            "/calico/ipam/v2/host/node1/ipv4/block/10.65.0.0-26",
            br#"{"state":"confirmed","deleted":false}"#,
        ))
        .expect("writing the block affinity");
    cluster
        .rt
        .block_on(backend.put(
            "/calico/ipam/v2/host/node2/ipv4/block/10.65.0.64-26",
            br#"{"state":"confirmed","deleted":false}"#,
        ))
        .expect("writing another node's affinity");
    let agent = cluster.start_agent(&[]);
    let show = || routes(&cluster.node, "-4");
    wait_for(
        Duration::from_secs(10),
        "workload and blackhole routes",
        || {
            let r = show();
            r.contains("10.65.0.2 dev cali0000000000a proto 80 scope link")
                && r.contains("10.65.0.3 dev cali0000000000b proto 80 scope link")
                && r.contains("blackhole 10.65.0.0/26 proto 80")
        },
        || format!("{}\n{}", show(), agent.log()),
    );
    assert!(!show().contains("10.65.0.64"), "{}", show());

    // The routes carry traffic: a reaches b only through them.
    let server = EchoServer::start(cluster.pod(1), 8080);
    assert!(tcp_reaches(cluster.pod(0), server.address, PROBE));

    // Deleted behind the agent's back: back within the refresh interval.
    cluster
        .node
        .exec("ip route del 10.65.0.3 dev cali0000000000b")
        .expect("deleting the route");
    wait_for(
        Duration::from_secs(5),
        "the deleted route to come back",
        || show().contains("10.65.0.3 dev cali0000000000b"),
        || format!("{}\n{}", show(), agent.log()),
    );

    // A route of someone else's is left alone.
    cluster
        .node
        .exec("ip route add 10.77.0.0/24 via 10.99.0.254 dev uplink0")
        .expect("adding a foreign route");

    // The endpoint goes: its route goes. The affinity goes: the blackhole
    // goes.
    let wep_name = format!("{NODE}-k8s-b-eth0");
    cluster
        .rt
        .block_on(
            cluster
                .client
                .delete(Kind::WorkloadEndpoint, NS, &wep_name, None),
        )
        .expect("deleting the endpoint");
    cluster
        .rt
        .block_on(backend.delete("/calico/ipam/v2/host/node1/ipv4/block/10.65.0.0-26", None))
        .expect("deleting the affinity");
    wait_for(
        Duration::from_secs(5),
        "the endpoint's route and the blackhole to be removed",
        || {
            let r = show();
            !r.contains("10.65.0.3") && !r.contains("blackhole") && r.contains("10.65.0.2 dev")
        },
        || format!("{}\n{}", show(), agent.log()),
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        show().contains("10.77.0.0/24 via 10.99.0.254"),
        "{}",
        show()
    );
}

#[test]
fn restart_keeps_rules_and_established_connections() {
    let cluster = Cluster::new(Store::embedded());
    let server = EchoServer::start(cluster.pod(1), 8080);
    let mut agent = cluster.start_agent(&[]);
    // Only a → b on 8080 is allowed to b; the connection is made under it.
    let mut allow = NetworkPolicy {
        metadata: ObjectMeta::namespaced(NS, "allow-a"),
        ..NetworkPolicy::default()
    };
    allow.spec.selector = "app == 'b'".into();
    allow.spec.types = vec![PolicyType::Ingress];
    let mut rule = Rule::new(Action::Allow);
    rule.source.selector = "app == 'a'".into();
    allow.spec.ingress = vec![rule];
    cluster.apply(allow);
    wait_for(
        Duration::from_secs(10),
        "the allow policy",
        || list_table(&cluster.node, "ip").is_some_and(|t| t.contains("allow-a")),
        || agent.log(),
    );
    let mut stream = tcp_connect(cluster.pod(0), server.address).expect("connecting a → b");
    support::echo(&mut stream, b"before restart\n", Duration::from_secs(2)).expect("echo");
    let before = list_table(&cluster.node, "ip").expect("the agent's table");

    assert!(
        agent.terminate(),
        "SIGTERM ends the agent cleanly:\n{}",
        agent.log()
    );
    // Rules stay in place while the agent is down.
    assert_eq!(
        list_table(&cluster.node, "ip").as_deref(),
        Some(before.as_str())
    );
    support::echo(&mut stream, b"while down\n", Duration::from_secs(2)).expect("echo while down");

    let agent = cluster.start_agent(&[]);
    support::echo(&mut stream, b"after restart\n", Duration::from_secs(2))
        .expect("the established connection survives the restart");
    // Reconciled, not rewritten: every rule keeps its kernel handle.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        list_table(&cluster.node, "ip").as_deref(),
        Some(before.as_str()),
        "{}",
        agent.log()
    );
    // New connections are still judged by the same rules.
    assert!(tcp_reaches(cluster.pod(0), server.address, PROBE));
}

#[test]
fn configuration_changes_apply_live() {
    let cluster = Cluster::new(Store::etcd());
    let agent = cluster.start_agent(&[]);
    let per_node = format!("node.{NODE}");
    // Start-up set this node's defaultEndpointToHostAction to Return: a pod
    // reaches the host (a closed port answers with a reset).
    let host: SocketAddr = "10.99.0.1:7000".parse().unwrap();
    assert!(tcp_reaches(cluster.pod(0), host, PROBE), "{}", agent.log());
    // The global configuration says Drop, but the per-node one wins.
    let mut global = calico_model::FelixConfiguration {
        metadata: ObjectMeta::named("default"),
        ..Default::default()
    };
    global.spec.default_endpoint_to_host_action = Some("Drop".into());
    cluster.apply(global);
    std::thread::sleep(Duration::from_millis(300));
    assert!(tcp_reaches(cluster.pod(0), host, PROBE));
    // Replacing the per-node configuration (without the setting) lets the
    // global Drop through; the health port moves with it.
    let mut config = calico_model::FelixConfiguration {
        metadata: ObjectMeta::named(per_node.clone()),
        ..Default::default()
    };
    config.spec.health_port = Some(9199);
    config.spec.log_severity_screen = Some("Debug".into());
    cluster.apply(config.clone());
    let moved: SocketAddr = "127.0.0.1:9199".parse().unwrap();
    wait_for(
        Duration::from_secs(10),
        "the health endpoint to move to 9199",
        || {
            matches!(
                http_get(&cluster.node.ns, moved, "/readiness"),
                Ok((200, _))
            )
        },
        || agent.log(),
    );
    wait_for(
        Duration::from_secs(5),
        "workload-to-host traffic to be dropped",
        || !tcp_reaches(cluster.pod(0), host, Duration::from_millis(100)),
        || agent.log(),
    );
    // An invalid value is logged and the previous value kept.
    config.spec.health_port = Some(70000);
    cluster.apply(config);
    wait_for(
        Duration::from_secs(10),
        "the invalid port to be reported",
        || {
            agent
                .log()
                .lines()
                .any(|l| l.contains("invalid configuration value") && l.contains("HealthPort"))
        },
        || agent.log(),
    );
    // It falls back to the next source: here Calico's default.
    wait_for(
        Duration::from_secs(10),
        "the health endpoint to return to the default port",
        || {
            matches!(
                http_get(
                    &cluster.node.ns,
                    "127.0.0.1:9099".parse().unwrap(),
                    "/readiness"
                ),
                Ok((200, _))
            )
        },
        || agent.log(),
    );
}

#[test]
fn compacted_history_forces_a_resync_that_catches_deletions() {
    let cluster = Cluster::new(Store::embedded());
    let server = EchoServer::start(cluster.pod(1), 8080);
    let agent = cluster.start_agent(&[]);
    let (a, target) = (cluster.pod(0), server.address);
    cluster.apply(deny_to_b());
    wait_for(
        Duration::from_secs(5),
        "the deny policy",
        || !tcp_reaches(a, target, Duration::from_millis(100)),
        || agent.log(),
    );
    let backend = cluster.store.backend(&cluster.rt);
    let resyncs = || metric(&cluster.metrics(), "felix_resyncs_started").unwrap_or(0.0);
    let key = calico_model::keys::resource_key(Kind::NetworkPolicy, NS, "deny-b");
    // Delete the policy and compact its history away before the agent's
    // watch reads it (the embedded engine's watch polls every few ms): the
    // watch reports the compaction and the agent lists again, finding the
    // policy gone. Retried until the race is won at least once.
    let filler = |n: usize| {
        format!(
            r#"{{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{{"name":"filler"}},"spec":{{"order":{n}}}}}"#
        )
    };
    for attempt in 0..200 {
        let writes = async {
            if attempt == 0 {
                backend
                    .delete(&key, None)
                    .await
                    .expect("deleting the policy");
            }
            // Compacting to the current revision keeps that revision's
            // event: a second write puts the first one out of reach.
            for n in 0..2 {
                backend
                    .put(
                        "/calico/resources/v3/projectcalico.org/tiers/filler",
                        filler(500 + n).as_bytes(),
                    )
                    .await
                    .expect("writing a filler");
            }
            let revision = backend.revision().await.expect("revision");
            backend.compact(revision).await.expect("compacting");
        };
        cluster.rt.block_on(writes);
        std::thread::sleep(Duration::from_millis(50));
        if resyncs() >= 1.0 {
            eprintln!("resync after {} attempts", attempt + 1);
            break;
        }
    }
    assert!(resyncs() >= 1.0, "no resync happened:\n{}", agent.log());
    wait_for(
        Duration::from_secs(5),
        "traffic to flow after the resync",
        || tcp_reaches(a, target, PROBE),
        || agent.log(),
    );
    assert!(agent.log().contains("compacted"), "{}", agent.log());
}

#[test]
fn a_burst_of_writes_becomes_few_transactions() {
    let cluster = Cluster::new(Store::etcd());
    let agent = cluster.start_agent(&[
        ("FELIX_NFTABLESREFRESHINTERVAL", "0"),
        ("FELIX_ROUTEREFRESHINTERVAL", "0"),
    ]);
    let applies = || {
        metric(
            &cluster.metrics(),
            "felix_int_dataplane_apply_time_seconds_count",
        )
        .unwrap_or(0.0)
    };
    let before = applies();
    let policies: Vec<_> = (0..20)
        .map(|i| {
            let mut p = NetworkPolicy {
                metadata: ObjectMeta::namespaced(NS, format!("burst-{i}")),
                ..NetworkPolicy::default()
            };
            p.spec.selector = "app == 'b'".into();
            p.spec.types = vec![PolicyType::Ingress];
            let mut rule = Rule::new(Action::Allow);
            rule.protocol = Some(calico_model::Protocol::tcp());
            rule.destination.ports = vec![calico_model::Port::single(2000 + i)];
            p.spec.ingress = vec![rule];
            cluster.client.create(p.into())
        })
        .collect();
    for result in cluster.rt.block_on(futures::future::join_all(policies)) {
        result.expect("creating a policy");
    }
    wait_for(
        Duration::from_secs(10),
        "all 20 policies in the ruleset",
        || {
            list_table(&cluster.node, "ip")
                .is_some_and(|t| (0..20).all(|i| t.contains(&format!("burst-{i}"))))
        },
        || agent.log(),
    );
    std::thread::sleep(Duration::from_millis(200));
    let transactions = applies() - before;
    eprintln!("20 concurrent writes applied in {transactions} dataplane updates");
    assert!(
        (1.0..=6.0).contains(&transactions),
        "{transactions} dataplane updates for 20 writes"
    );
}

#[test]
fn a_datastore_outage_leaves_the_dataplane_in_place() {
    let mut cluster = Cluster::new(Store::etcd());
    let server = EchoServer::start(cluster.pod(1), 8080);
    let agent = cluster.start_agent(&[]);
    let (a, target) = (cluster.pod(0), server.address);
    cluster.apply(deny_to_b());
    wait_for(
        Duration::from_secs(5),
        "the deny policy",
        || !tcp_reaches(a, target, Duration::from_millis(100)),
        || agent.log(),
    );
    let table = list_table(&cluster.node, "ip").expect("the agent's table");

    // Stop etcd (by its PID, through its handle).
    drop(std::mem::replace(&mut cluster.store, Store::embedded()));
    wait_for(
        Duration::from_secs(10),
        "the agent to notice the outage",
        || metric(&cluster.metrics(), "felix_resync_state") == Some(1.0),
        || agent.log(),
    );
    // Repairs keep running against the last known state; nothing is torn
    // down, policy is still enforced and the agent stays live.
    std::thread::sleep(Duration::from_millis(1500));
    let (a, target) = (cluster.pod(0), server.address);
    assert!(!tcp_reaches(a, target, Duration::from_millis(100)));
    assert_eq!(
        list_table(&cluster.node, "ip").as_deref(),
        Some(table.as_str())
    );
    let health: SocketAddr = "127.0.0.1:9099".parse().unwrap();
    assert_eq!(
        http_get(&cluster.node.ns, health, "/liveness").unwrap().0,
        200
    );
    assert!(
        agent.log().contains("the datastore watch failed")
            || agent.log().contains("listing the datastore failed"),
        "{}",
        agent.log()
    );
}
