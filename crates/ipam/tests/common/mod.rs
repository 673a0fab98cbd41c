//! Shared set-up for the allocator tests: a datastore with IP pools and
//! nodes written where Calico writes them.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use calico_datastore::{Backend, Durability, EmbeddedBackend, EmbeddedOptions};
use calico_ipam::{Ipam, IpamOptions, ManualClock, Time};
use calico_model::{IpPool, IpPoolSpec, IpReservation, IpReservationSpec, Node, ObjectMeta};
use chrono::TimeZone;
use serde::Serialize;

pub const RESOURCES: &str = "/calico/resources/v3/projectcalico.org/";

/// A fresh embedded datastore in a temporary directory.
pub async fn embedded() -> (tempfile::TempDir, EmbeddedBackend) {
    let dir = tempfile::tempdir().unwrap();
    let backend = EmbeddedBackend::open_with(
        dir.path().join("calico.db"),
        EmbeddedOptions {
            durability: Durability::Normal,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    (dir, backend)
}

async fn put_resource<B: Backend, T: Serialize>(
    backend: &B,
    kind: &str,
    plural: &str,
    name: &str,
    value: &T,
) {
    let mut json = serde_json::to_value(value).unwrap();
    let obj = json.as_object_mut().unwrap();
    obj.insert("kind".into(), kind.into());
    obj.insert("apiVersion".into(), "projectcalico.org/v3".into());
    backend
        .put(
            &format!("{RESOURCES}{plural}/{name}"),
            &serde_json::to_vec(&json).unwrap(),
        )
        .await
        .unwrap();
}

pub async fn put_pool<B: Backend>(
    backend: &B,
    name: &str,
    cidr: &str,
    block_size: i64,
    edit: impl FnOnce(&mut IpPoolSpec),
) {
    let mut spec = IpPoolSpec {
        cidr: cidr.into(),
        block_size,
        ..Default::default()
    };
    edit(&mut spec);
    let pool = IpPool {
        metadata: ObjectMeta::named(name),
        spec,
        status: None,
    };
    put_resource(backend, "IPPool", "ippools", name, &pool).await;
}

pub async fn put_node<B: Backend>(backend: &B, name: &str, labels: &[(&str, &str)]) {
    let mut node = Node {
        metadata: ObjectMeta::named(name),
        ..Default::default()
    };
    node.metadata.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    put_resource(backend, "Node", "nodes", name, &node).await;
}

pub async fn put_reservation<B: Backend>(backend: &B, name: &str, cidrs: &[&str]) {
    let r = IpReservation {
        metadata: ObjectMeta::named(name),
        spec: IpReservationSpec {
            reserved_cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
        },
    };
    put_resource(backend, "IPReservation", "ipreservations", name, &r).await;
}

pub fn t0() -> Time {
    chrono::Utc.timestamp_opt(1_750_000_000, 0).unwrap()
}

/// IPAM with a clock the test moves.
pub fn ipam_with_clock<B: Backend>(backend: B) -> (Ipam<B>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(t0()));
    (
        Ipam::with_clock(backend, clock.clone(), IpamOptions::default()),
        clock,
    )
}

pub fn pod_attrs(node: &str, pod: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("namespace".to_owned(), "default".to_owned()),
        ("node".to_owned(), node.to_owned()),
        ("pod".to_owned(), pod.to_owned()),
    ])
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Every key under `prefix` with its JSON value.
pub async fn dump<B: Backend>(backend: &B, prefix: &str) -> BTreeMap<String, serde_json::Value> {
    backend
        .list(prefix)
        .await
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| {
            let v = if kv.value.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::from_slice(&kv.value).unwrap()
            };
            (kv.key, v)
        })
        .collect()
}
