//! Fixtures for the conformance suite: each engine started for real, and a
//! way to reach it from another process.

#![allow(dead_code)]

pub mod suite;

use std::path::PathBuf;
use std::time::Duration;

use calico_datastore::config::EtcdConfig;
use calico_datastore::{
    AnyBackend, Backend, DatastoreConfig, EmbeddedBackend, EmbeddedConfig, EtcdBackend,
};
use calico_testutil::Etcd;
use tempfile::TempDir;

/// A running engine the suite can open handles to.
pub trait Fixture: Sized {
    type B: Backend + Clone + 'static;

    async fn start() -> Self;

    /// A new, independent handle on the same data (its own connections).
    async fn open(&self) -> Self::B;

    /// How a child process reaches the same data.
    fn config(&self) -> DatastoreConfig;
}

pub struct EmbeddedFixture {
    dir: TempDir,
}

impl EmbeddedFixture {
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("calico.db")
    }
}

impl Fixture for EmbeddedFixture {
    type B = EmbeddedBackend;

    async fn start() -> Self {
        EmbeddedFixture {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    async fn open(&self) -> EmbeddedBackend {
        EmbeddedBackend::open(self.path())
            .await
            .unwrap_or_else(|e| panic!("{}", calico_datastore::display_chain(&e)))
    }

    fn config(&self) -> DatastoreConfig {
        DatastoreConfig::Embedded(EmbeddedConfig { path: self.path() })
    }
}

pub struct EtcdFixture {
    pub etcd: Etcd,
}

impl Fixture for EtcdFixture {
    type B = EtcdBackend;

    async fn start() -> Self {
        let etcd = tokio::task::spawn_blocking(Etcd::start)
            .await
            .expect("etcd start");
        EtcdFixture { etcd }
    }

    async fn open(&self) -> EtcdBackend {
        EtcdBackend::connect(&EtcdConfig::new([self.etcd.endpoint()]))
            .await
            .unwrap_or_else(|e| panic!("{}", calico_datastore::display_chain(&e)))
    }

    fn config(&self) -> DatastoreConfig {
        DatastoreConfig::Etcd(EtcdConfig::new([self.etcd.endpoint()]))
    }
}

/// Environment variables that turn the `cas_increment_worker` test into a
/// worker for another test's data.
pub const WORKER_DATASTORE: &str = "CALICO_TEST_WORKER_DATASTORE";
pub const WORKER_KEY: &str = "CALICO_TEST_WORKER_KEY";
pub const WORKER_COUNT: &str = "CALICO_TEST_WORKER_COUNT";

/// Encodes a config for a worker process (`embedded:PATH` or
/// `etcdv3:ENDPOINT`).
pub fn worker_spec(config: &DatastoreConfig) -> String {
    match config {
        DatastoreConfig::Embedded(e) => format!("embedded:{}", e.path.display()),
        DatastoreConfig::Etcd(e) => format!("etcdv3:{}", e.endpoints.join(",")),
        other => panic!("no worker encoding for {other:?}"),
    }
}

pub fn parse_worker_spec(spec: &str) -> DatastoreConfig {
    match spec.split_once(':') {
        Some(("embedded", path)) => DatastoreConfig::Embedded(EmbeddedConfig { path: path.into() }),
        Some(("etcdv3", endpoints)) => DatastoreConfig::Etcd(EtcdConfig::new(endpoints.split(','))),
        _ => panic!("bad worker spec {spec:?}"),
    }
}

/// Adds one to the decimal counter at `key` `count` times, each with
/// compare-and-swap, retrying on conflicts. Returns how many conflicts were
/// retried.
pub async fn cas_increments(backend: &AnyBackend, key: &str, count: usize) -> usize {
    let mut conflicts = 0;
    for _ in 0..count {
        loop {
            let current = backend
                .get(key)
                .await
                .unwrap_or_else(|e| panic!("get {key}: {}", calico_datastore::display_chain(&e)))
                .unwrap_or_else(|| panic!("counter {key} missing"));
            let value: u64 = std::str::from_utf8(&current.value)
                .unwrap()
                .parse()
                .unwrap();
            match backend
                .update(
                    key,
                    (value + 1).to_string().as_bytes(),
                    current.mod_revision,
                )
                .await
            {
                Ok(_) => break,
                Err(calico_datastore::Error::Conflict { .. }) => conflicts += 1,
                Err(e) => panic!("update {key}: {}", calico_datastore::display_chain(&e)),
            }
        }
    }
    conflicts
}

/// Waits for the next watch item, failing the test after a generous delay.
pub async fn next_event(
    stream: &mut calico_datastore::WatchStream,
) -> Option<Result<calico_datastore::Event, calico_datastore::Error>> {
    tokio::time::timeout(Duration::from_secs(20), stream.recv())
        .await
        .expect("no watch event within 20 s")
}
