//! Choosing an engine at run time.

use crate::config::DatastoreConfig;
use crate::{
    Backend, EmbeddedBackend, EmbeddedOptions, Error, EtcdBackend, KeyValue, Listing, Revision,
    WatchStream,
};

/// Either engine, picked from configuration; every call is passed through.
#[derive(Debug, Clone)]
pub enum AnyBackend {
    Embedded(EmbeddedBackend),
    Etcd(EtcdBackend),
}

impl AnyBackend {
    /// What this backend talks to (a file path or etcd endpoints), for
    /// messages.
    pub fn target(&self) -> String {
        match self {
            AnyBackend::Embedded(b) => b.path().display().to_string(),
            AnyBackend::Etcd(b) => b.target().to_owned(),
        }
    }
}

/// Opens the configured datastore: the embedded file (created if missing)
/// or a checked connection to etcd.
pub async fn connect(config: &DatastoreConfig) -> Result<AnyBackend, Error> {
    connect_with(config, EmbeddedOptions::default()).await
}

/// As [`connect`], with `embedded` as the embedded engine's options.
pub async fn connect_with(
    config: &DatastoreConfig,
    embedded: EmbeddedOptions,
) -> Result<AnyBackend, Error> {
    match config {
        DatastoreConfig::Embedded(config) => EmbeddedBackend::open_with(&config.path, embedded)
            .await
            .map(AnyBackend::Embedded),
        DatastoreConfig::Etcd(etcd) => EtcdBackend::connect(etcd).await.map(AnyBackend::Etcd),
    }
}

macro_rules! delegate {
    ($self:ident, $b:ident => $call:expr) => {
        match $self {
            AnyBackend::Embedded($b) => $call.await,
            AnyBackend::Etcd($b) => $call.await,
        }
    };
}

impl Backend for AnyBackend {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, Error> {
        delegate!(self, b => b.get(key))
    }

    async fn list(&self, prefix: &str) -> Result<Listing, Error> {
        delegate!(self, b => b.list(prefix))
    }

    async fn create(&self, key: &str, value: &[u8]) -> Result<KeyValue, Error> {
        delegate!(self, b => b.create(key, value))
    }

    async fn update(
        &self,
        key: &str,
        value: &[u8],
        expected_mod_revision: Revision,
    ) -> Result<KeyValue, Error> {
        delegate!(self, b => b.update(key, value, expected_mod_revision))
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<KeyValue, Error> {
        delegate!(self, b => b.put(key, value))
    }

    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<Revision>,
    ) -> Result<KeyValue, Error> {
        delegate!(self, b => b.delete(key, expected_mod_revision))
    }

    async fn watch(&self, prefix: &str, after_revision: Revision) -> Result<WatchStream, Error> {
        delegate!(self, b => b.watch(prefix, after_revision))
    }

    async fn revision(&self) -> Result<Revision, Error> {
        delegate!(self, b => b.revision())
    }

    async fn compact(&self, revision: Revision) -> Result<(), Error> {
        delegate!(self, b => b.compact(revision))
    }
}
