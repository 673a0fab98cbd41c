//! The typed client against both engines: an embedded datastore in a
//! temporary directory and a real etcd started for each test.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use calico_client::{Applied, Client, Error, FixedStamper, WatchEvent};
use calico_datastore::{AnyBackend, Backend, EmbeddedBackend, EtcdBackend, EtcdConfig};
use calico_model::kind::Kind;
use calico_model::resource::AnyResource;
use calico_model::{IpPool, Tier};
use calico_selector::Selector;

const NOW: &str = "2024-05-06T07:08:09Z";

/// Keeps whatever backs the datastore alive for the test.
enum Guard {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Etcd(#[allow(dead_code)] calico_testutil::Etcd),
}

async fn embedded() -> (Client<AnyBackend>, Guard) {
    let dir = tempfile::tempdir().unwrap();
    let backend = EmbeddedBackend::open(dir.path().join("calico.db"))
        .await
        .unwrap();
    let client = Client::with_stamper(
        AnyBackend::Embedded(backend),
        Arc::new(FixedStamper::new(NOW)),
    );
    (client, Guard::Dir(dir))
}

async fn etcd() -> (Client<AnyBackend>, Guard) {
    let etcd = calico_testutil::Etcd::start();
    let backend = EtcdBackend::connect(&EtcdConfig::new([etcd.endpoint()]))
        .await
        .unwrap();
    let client = Client::with_stamper(AnyBackend::Etcd(backend), Arc::new(FixedStamper::new(NOW)));
    (client, Guard::Etcd(etcd))
}

fn res(v: Value) -> AnyResource {
    AnyResource::from_json_value(v).unwrap_or_else(|e| panic!("test resource: {e}"))
}

fn pool(name: &str, cidr: &str) -> AnyResource {
    res(
        json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": name},
               "spec": {"cidr": cidr, "ipipMode": "Always", "natOutgoing": true}}),
    )
}

async fn raw(client: &Client<AnyBackend>, key: &str) -> Value {
    let kv = client
        .backend()
        .get(key)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{key} not stored"));
    serde_json::from_slice(&kv.value).unwrap()
}

async fn create_stores_calicos_json(client: Client<AnyBackend>) {
    let created = client.create(pool("p1", "10.10.0.0/16")).await.unwrap();
    let meta = created.metadata();
    assert_eq!(meta.uid, "00000000-0000-4000-8000-000000000001");
    assert_eq!(meta.creation_timestamp.as_deref(), Some(NOW));
    let key = "/calico/resources/v3/projectcalico.org/ippools/p1";
    let kv = client.backend().get(key).await.unwrap().unwrap();
    assert_eq!(meta.resource_version, kv.mod_revision.to_string());
    // What Calico's etcdv3 backend writes: kind and apiVersion first, no
    // resourceVersion, defaults filled in.
    assert_eq!(
        String::from_utf8(kv.value).unwrap(),
        r#"{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"p1","uid":"00000000-0000-4000-8000-000000000001","creationTimestamp":"2024-05-06T07:08:09Z"},"spec":{"cidr":"10.10.0.0/16","vxlanMode":"Never","ipipMode":"Always","natOutgoing":true,"blockSize":26,"nodeSelector":"all()","allowedUses":["Workload","Tunnel"],"assignmentMode":"Automatic"}}"#
    );
    let got = client.get(Kind::IpPool, "", "p1").await.unwrap();
    assert_eq!(got, created);
    let typed: IpPool = client.get_typed("", "p1").await.unwrap();
    assert_eq!(typed.spec.block_size, 26);

    let err = client.create(pool("p1", "10.10.0.0/16")).await.unwrap_err();
    assert!(err.is_already_exists(), "{err}");
    assert_eq!(err.to_string(), "resource already exists: IPPool(p1)");

    let mut with_version = pool("p9", "10.90.0.0/16");
    with_version.metadata_mut().resource_version = "3".into();
    let err = client.create(with_version).await.unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
}

async fn update_is_compare_and_swap(client: Client<AnyBackend>) {
    let created = client.create(pool("p1", "10.10.0.0/16")).await.unwrap();
    let version = created.metadata().resource_version.clone();

    // A stale version is refused, naming both versions.
    let mut stale = created.clone();
    stale.metadata_mut().resource_version = "1".into();
    let err = client.update(stale).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert!(
        err.to_string().contains(&format!("(latest: {version})")),
        "{err}"
    );

    // The current version works; uid and creation time are kept, labels
    // come from the update.
    let mut next = created.clone();
    next.metadata_mut().labels.insert("zone".into(), "a".into());
    next.metadata_mut().uid = "ignored".into();
    let updated = client.update(next).await.unwrap();
    assert_eq!(updated.metadata().uid, created.metadata().uid);
    assert_eq!(updated.metadata().labels["zone"], "a");
    assert_ne!(updated.metadata().resource_version, version);

    // Without a version: read, modify, write.
    let mut blind = pool("p1", "10.10.0.0/16");
    if let AnyResource::IpPool(p) = &mut blind {
        p.spec.disabled = true;
    }
    let updated = client.update(blind).await.unwrap();
    assert_eq!(updated.to_json_value()["spec"]["disabled"], true);

    // Calico refuses changing a pool's CIDR or block size.
    let err = client.update(pool("p1", "10.11.0.0/16")).await.unwrap_err();
    match &err {
        Error::Invalid { errors, .. } => assert!(errors.has_path("spec.cidr"), "{errors}"),
        other => panic!("want Invalid, got {other}"),
    }
    let err = client
        .update(pool("missing", "10.12.0.0/16"))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

async fn apply_creates_then_updates(client: Client<AnyBackend>) {
    let first = client.apply(pool("p1", "10.10.0.0/16")).await.unwrap();
    assert!(matches!(first, Applied::Created(_)));
    let mut changed = pool("p1", "10.10.0.0/16");
    changed.metadata_mut().labels.insert("a".into(), "b".into());
    let second = client.apply(changed).await.unwrap();
    assert!(matches!(second, Applied::Updated(_)));
    assert_eq!(
        second.resource().metadata().uid,
        first.resource().metadata().uid
    );
    assert_eq!(second.resource().metadata().labels["a"], "b");
}

async fn list_by_namespace_and_selector(client: Client<AnyBackend>) {
    client.ensure_initialized("", "").await.unwrap();
    // An empty namespace means every namespace, for watches as for lists.
    let mut watch = Box::pin(
        client
            .watch(Kind::NetworkPolicy, Some(""), None)
            .await
            .unwrap(),
    );
    for (ns, name, app) in [("a", "p1", "web"), ("a", "p2", "db"), ("b", "p3", "web")] {
        client
            .create(res(
                json!({"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
                "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
                "spec": {"selector": "all()", "ingress": [{"action": "Allow"}]}}),
            ))
            .await
            .unwrap();
    }
    let mut watched = Vec::new();
    while watched.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(10), watch.next()).await {
            Ok(Some(WatchEvent::Added(r))) => watched.push(r.display_name()),
            other => panic!("want Added, got {other:?}"),
        }
    }
    assert_eq!(watched, ["a/p1", "a/p2", "b/p3"]);
    let names = |list: calico_client::ResourceList| -> Vec<String> {
        list.items.iter().map(|r| r.display_name()).collect()
    };
    for all in [None, Some("")] {
        assert_eq!(
            names(client.list(Kind::NetworkPolicy, all, None).await.unwrap()),
            ["a/p1", "a/p2", "b/p3"],
            "{all:?}"
        );
    }
    assert_eq!(
        names(
            client
                .list(Kind::NetworkPolicy, Some("a"), None)
                .await
                .unwrap()
        ),
        ["a/p1", "a/p2"]
    );
    let web = Selector::parse("app == 'web'").unwrap();
    let list = client
        .list(Kind::NetworkPolicy, None, Some(&web))
        .await
        .unwrap();
    let revision = client.backend().revision().await.unwrap();
    assert_eq!(list.resource_version, revision.to_string());
    assert_eq!(names(list), ["a/p1", "b/p3"]);

    // Read back with Calico's defaults: types and the tier label.
    let p = client
        .get(Kind::NetworkPolicy, "a", "p1")
        .await
        .unwrap()
        .to_json_value();
    assert_eq!(p["spec"]["types"], json!(["Ingress"]));
    assert_eq!(p["metadata"]["labels"]["projectcalico.org/tier"], "default");
    let list_doc = client
        .list(Kind::Tier, None, None)
        .await
        .unwrap()
        .to_json_value();
    assert_eq!(list_doc["kind"], "TierList");
    let tiers: Vec<&str> = list_doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(tiers, ["default", "kube-admin", "kube-baseline"]);
}

async fn delete_semantics(client: Client<AnyBackend>) {
    let created = client.create(pool("p1", "10.10.0.0/16")).await.unwrap();
    let err = client
        .delete(Kind::IpPool, "", "p1", Some("1"))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    let version = created.metadata().resource_version.clone();
    let gone = client
        .delete(Kind::IpPool, "", "p1", Some(&version))
        .await
        .unwrap();
    assert_eq!(gone.metadata().name, "p1");
    // The pool was disabled before it went, as Calico does.
    assert_eq!(gone.to_json_value()["spec"]["disabled"], true);
    let err = client
        .delete(Kind::IpPool, "", "p1", None)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "resource does not exist: IPPool(p1)");
    let err = client
        .get(Kind::NetworkPolicy, "ns", "x")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "resource does not exist: NetworkPolicy(ns/x)"
    );
}

async fn tiers_and_policies(client: Client<AnyBackend>) {
    let gnp = || {
        res(
            json!({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
            "metadata": {"name": "security.deny-all"}, "spec": {"tier": "security", "selector": "all()"}}),
        )
    };
    let err = client.create(gnp()).await.unwrap_err();
    assert_eq!(err.to_string(), "resource does not exist: Tier(security)");

    client
        .ensure_initialized("v3.31.0", "k8s,bgp")
        .await
        .unwrap();
    // A second run changes nothing.
    let before = client.backend().revision().await.unwrap();
    client.ensure_initialized("v3.31.0", "k8s").await.unwrap();
    assert_eq!(client.backend().revision().await.unwrap(), before);
    let info = client
        .get(Kind::ClusterInformation, "", "default")
        .await
        .unwrap()
        .to_json_value();
    assert_eq!(
        info["spec"]["clusterGUID"],
        "00000000000040008000000000000001"
    );
    assert_eq!(info["spec"]["datastoreReady"], true);
    assert_eq!(info["spec"]["clusterType"], "k8s,bgp");
    let default: Tier = client.get_typed("", "default").await.unwrap();
    assert_eq!(default.spec.order, Some(1_000_000.0));

    client
        .create(res(json!({"apiVersion": "projectcalico.org/v3", "kind": "Tier", "metadata": {"name": "security"}, "spec": {"order": 100}})))
        .await
        .unwrap();
    let created = client.create(gnp()).await.unwrap();
    assert_eq!(
        created.metadata().labels["projectcalico.org/tier"],
        "security"
    );

    let err = client
        .delete(Kind::Tier, "", "security", None)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "operation delete is not supported on Tier(security): Cannot delete a non-empty tier"
    );
    let err = client
        .delete(Kind::Tier, "", "default", None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("Cannot delete default tier"),
        "{err}"
    );
    client
        .delete(Kind::GlobalNetworkPolicy, "", "security.deny-all", None)
        .await
        .unwrap();
    client
        .delete(Kind::Tier, "", "security", None)
        .await
        .unwrap();
}

async fn validation_and_pool_overlap(client: Client<AnyBackend>) {
    let bad = res(
        json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "Bad_Name"},
                         "spec": {"cidr": "10.0.0.0/8"}}),
    );
    let err = client.create(bad).await.unwrap_err();
    match &err {
        Error::Invalid { id, errors } => {
            assert_eq!(id.name, "Bad_Name");
            assert!(errors.has_path("metadata.name"), "{errors}");
        }
        other => panic!("want Invalid, got {other}"),
    }
    client.create(pool("p1", "10.10.0.0/16")).await.unwrap();
    let err = client
        .create(pool("p2", "10.10.128.0/17"))
        .await
        .unwrap_err();
    let chain = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(
        chain.contains("IPPool(p2) CIDR overlaps with IPPool(p1) CIDR 10.10.0.0/16"),
        "{chain}"
    );
    // Nothing was written for the refused resources.
    assert_eq!(
        client
            .list(Kind::IpPool, None, None)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

async fn kubernetes_policy_stored_as_kube_controllers_does(client: Client<AnyBackend>) {
    client.ensure_initialized("", "").await.unwrap();
    let knp = res(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-web", "namespace": "prod", "labels": {"x": "y"}},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                 "ingress": [{"ports": [{"port": 80}]}]}}),
    );
    let stored = client.create(knp.clone()).await.unwrap();
    assert_eq!(stored.kind(), Kind::NetworkPolicy);
    let doc = raw(
        &client,
        "/calico/resources/v3/projectcalico.org/networkpolicies/prod/knp.default.allow-web",
    )
    .await;
    assert_eq!(doc["kind"], "NetworkPolicy");
    assert_eq!(doc["apiVersion"], "projectcalico.org/v3");
    assert_eq!(doc["spec"]["tier"], "default");
    assert_eq!(doc["spec"]["order"], 1000);
    // Calico's etcd backend keeps a policy's own name in an annotation.
    assert_eq!(
        doc["metadata"]["annotations"]["projectcalico.org/metadata"],
        r#"{"name":"knp.default.allow-web"}"#
    );
    assert_eq!(
        doc["spec"]["selector"],
        "projectcalico.org/orchestrator == 'k8s' && app == 'web'"
    );
    assert_eq!(
        doc["spec"]["ingress"][0]["destination"]["ports"],
        json!([80])
    );
    // Reading, applying and deleting by the Kubernetes identity work too.
    let got = client
        .get(Kind::KubernetesNetworkPolicy, "prod", "allow-web")
        .await
        .unwrap();
    assert_eq!(got.metadata().name, "knp.default.allow-web");
    assert!(matches!(
        client.apply(knp).await.unwrap(),
        Applied::Updated(_)
    ));
    assert_eq!(
        client
            .list(Kind::KubernetesNetworkPolicy, None, None)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    client
        .delete(Kind::KubernetesNetworkPolicy, "prod", "allow-web", None)
        .await
        .unwrap();
    assert!(
        client
            .list(Kind::NetworkPolicy, None, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

async fn watch_reports_typed_events(client: Client<AnyBackend>) {
    let start = client.backend().revision().await.unwrap().to_string();
    let mut events = Box::pin(
        client
            .watch(Kind::IpPool, None, Some(&start))
            .await
            .unwrap(),
    );
    client.create(pool("p1", "10.10.0.0/16")).await.unwrap();
    let mut labelled = pool("p1", "10.10.0.0/16");
    labelled
        .metadata_mut()
        .labels
        .insert("a".into(), "b".into());
    client.update(labelled).await.unwrap();
    client.delete(Kind::IpPool, "", "p1", None).await.unwrap();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .unwrap()
            .unwrap()
    };
    match next().await {
        WatchEvent::Added(r) => assert_eq!(r.metadata().name, "p1"),
        other => panic!("want Added, got {other:?}"),
    }
    match next().await {
        WatchEvent::Modified { resource, .. } => assert_eq!(resource.metadata().labels["a"], "b"),
        other => panic!("want Modified, got {other:?}"),
    }
    // The delete disables the pool first.
    match next().await {
        WatchEvent::Modified { resource, .. } => {
            assert_eq!(resource.to_json_value()["spec"]["disabled"], true)
        }
        other => panic!("want Modified (disable), got {other:?}"),
    }
    match next().await {
        WatchEvent::Deleted { id, previous, .. } => {
            assert_eq!(id.to_string(), "IPPool(p1)");
            if let Some(previous) = previous {
                assert_eq!(previous.metadata().name, "p1");
            }
        }
        other => panic!("want Deleted, got {other:?}"),
    }

    // A watch from compacted history is told to resync.
    let now = client.backend().revision().await.unwrap();
    client.backend().compact(now).await.unwrap();
    let mut old = Box::pin(
        client
            .watch(Kind::IpPool, None, Some(&start))
            .await
            .unwrap(),
    );
    let event = tokio::time::timeout(Duration::from_secs(10), old.next())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(event, WatchEvent::Resync { .. }), "{event:?}");
}

async fn workload_endpoints_are_named_by_defaults(client: Client<AnyBackend>) {
    let wep = res(
        json!({"apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
        "metadata": {"namespace": "prod", "labels": {"app": "web"}},
        "spec": {"orchestrator": "k8s", "node": "node1", "pod": "web", "endpoint": "eth0",
                 "interfaceName": "cali1", "ipNetworks": ["10.0.0.5/32"]}}),
    );
    let created = client.create(wep.clone()).await.unwrap();
    assert_eq!(created.metadata().name, "node1-k8s-web-eth0");
    let doc = raw(
        &client,
        "/calico/resources/v3/projectcalico.org/workloadendpoints/prod/node1-k8s-web-eth0",
    )
    .await;
    assert_eq!(
        doc["metadata"]["labels"]["projectcalico.org/namespace"],
        "prod"
    );
    // Updating without a name finds the same endpoint.
    let mut relabelled = wep;
    relabelled
        .metadata_mut()
        .labels
        .insert("tier".into(), "front".into());
    let updated = client.update(relabelled).await.unwrap();
    assert_eq!(updated.metadata().uid, created.metadata().uid);
    assert_eq!(
        client
            .list(Kind::WorkloadEndpoint, None, None)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

async fn deleting_a_pool_releases_its_block_affinities(client: Client<AnyBackend>) {
    client.create(pool("p1", "10.10.0.0/24")).await.unwrap();
    client
        .create(res(json!({"apiVersion": "projectcalico.org/v3", "kind": "Node", "metadata": {"name": "node1"}, "spec": {}})))
        .await
        .unwrap();
    let ipam = calico_ipam::Ipam::new(client.backend().clone());
    ipam.auto_assign(&calico_ipam::AutoAssignArgs {
        num4: 1,
        handle: Some("k8s-pod-network.c1".into()),
        hostname: "node1".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let affinities = || async {
        client
            .backend()
            .list("/calico/ipam/v2/host/node1/")
            .await
            .unwrap()
            .kvs
            .len()
    };
    assert_eq!(affinities().await, 1);
    client.delete(Kind::IpPool, "", "p1", None).await.unwrap();
    assert_eq!(
        affinities().await,
        0,
        "the pool's block affinity outlived it"
    );
}

macro_rules! on_both_engines {
    ($($test:ident),* $(,)?) => {
        mod embedded_engine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let (client, _guard) = super::embedded().await;
                    super::$test(client).await;
                }
            )*
        }
        mod etcd_engine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let (client, _guard) = super::etcd().await;
                    super::$test(client).await;
                }
            )*
        }
    };
}

on_both_engines!(
    create_stores_calicos_json,
    update_is_compare_and_swap,
    apply_creates_then_updates,
    list_by_namespace_and_selector,
    delete_semantics,
    tiers_and_policies,
    validation_and_pool_overlap,
    kubernetes_policy_stored_as_kube_controllers_does,
    watch_reports_typed_events,
    workload_endpoints_are_named_by_defaults,
    deleting_a_pool_releases_its_block_affinities,
);
