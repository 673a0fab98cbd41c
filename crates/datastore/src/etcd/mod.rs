//! The etcd v3 engine: keys and values stored verbatim, so a datastore
//! written by Calico's `etcdv3` mode is read as is, and the other way round.
//!
//! Writes with preconditions are etcd transactions, as Calico does them:
//! create is `create_revision == 0`, update is `version > 0 &&
//! mod_revision == expected`, a checked delete is `mod_revision ==
//! expected`, each reading the key in the else branch to say why it failed.
//!
//! Every request runs under a timeout, and [`EtcdBackend::connect`] checks
//! that the cluster answers, so an unreachable datastore is reported in
//! seconds with the endpoints and the reason instead of hanging.

mod connect;
mod tls;
mod watch;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
};

use crate::backend::{prefix_end, validate_key};
use crate::config::EtcdConfig;
use crate::error::Message;
use crate::{Backend, Error, KeyValue, Listing, Revision, WatchStream};

/// Keys fetched per range request when listing; the pages of one listing
/// are all read at the same revision. Large because etcd 3.4 walks the
/// whole remaining range for every page: one request for 100k keys took
/// 0.6 s where pages of 2000 took 1.0 s (benches/datastore.rs).
const LIST_PAGE: i64 = 100_000;

/// The largest response accepted (a page of large values).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024 * 1024;

/// A connection to an etcd v3 cluster. Cheap to clone.
#[derive(Clone)]
pub struct EtcdBackend {
    // Boxed behind an Arc: the client is several kilobytes.
    client: Arc<Client>,
    /// The endpoints, for error messages.
    target: String,
    /// Who we authenticate as, for error messages.
    identity: String,
    request_timeout: Duration,
    list_page: i64,
}

impl fmt::Debug for EtcdBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdBackend")
            .field("target", &self.target)
            .field("identity", &self.identity)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl EtcdBackend {
    /// Connects to the cluster and checks that it answers within
    /// `config.connect_timeout`.
    pub async fn connect(config: &EtcdConfig) -> Result<EtcdBackend, Error> {
        connect::connect(config).await
    }

    /// Sets how many keys one range request fetches when listing (default
    /// 100,000); larger listings take several requests, all read at the
    /// revision of the first.
    pub fn with_list_page(mut self, keys: usize) -> EtcdBackend {
        self.list_page = keys.clamp(1, i64::MAX as usize) as i64;
        self
    }

    /// The endpoints, comma separated.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Runs one request under the request timeout, turning a client error
    /// into an [`Error`] that names the operation and key.
    async fn call<T>(
        &self,
        operation: &'static str,
        key: &str,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.request_timeout, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.client_error(operation, key, e)),
            Err(_) => Err(Error::Timeout {
                target: self.target.clone(),
                operation,
                after: self.request_timeout,
            }),
        }
    }

    fn client_error(&self, operation: &'static str, key: &str, e: etcd_client::Error) -> Error {
        connect::classify(&self.target, &self.identity, operation, key, e)
    }

    fn operation_error(&self, operation: &'static str, key: &str, reason: String) -> Error {
        Error::Operation {
            target: self.target.clone(),
            operation,
            key: key.to_owned(),
            source: Box::new(Message(reason)),
        }
    }

    fn convert(
        &self,
        operation: &'static str,
        kv: &etcd_client::KeyValue,
    ) -> Result<KeyValue, Error> {
        convert_kv(kv).map_err(|reason| {
            self.operation_error(operation, &String::from_utf8_lossy(kv.key()), reason)
        })
    }

    /// Reads the current state of a key after a failed transaction guard
    /// (the else branch of every conditional write).
    fn existing(
        &self,
        operation: &'static str,
        responses: Vec<TxnOpResponse>,
    ) -> Result<Option<KeyValue>, Error> {
        for response in responses {
            if let TxnOpResponse::Get(get) = response {
                return get
                    .kvs()
                    .first()
                    .map(|kv| self.convert(operation, kv))
                    .transpose();
            }
        }
        Ok(None)
    }

    async fn list_once(&self, prefix: &str) -> Result<Listing, Error> {
        let mut kv = self
            .client
            .kv_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        let (mut start, end) = range_of(prefix);
        let mut revision = 0;
        let mut kvs = Vec::new();
        loop {
            let options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(self.list_page)
                .with_revision(revision);
            let response = self
                .call("list", prefix, kv.get(start.clone(), Some(options)))
                .await?;
            if revision == 0 {
                revision = response.header().map_or(0, |h| h.revision());
            }
            for item in response.kvs() {
                kvs.push(self.convert("list", item)?);
            }
            match response.kvs().last() {
                Some(last) if response.more() => {
                    // The next page starts just after the last key.
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => break,
            }
        }
        Ok(Listing { kvs, revision })
    }
}

/// The etcd key range for a prefix: the empty prefix is every key.
fn range_of(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    match prefix_end(prefix) {
        Some(end) => (prefix.as_bytes().to_vec(), end),
        None => (vec![0], vec![0]),
    }
}

fn convert_kv(kv: &etcd_client::KeyValue) -> Result<KeyValue, String> {
    let key = std::str::from_utf8(kv.key())
        .map_err(|_| format!("key {:?} is not UTF-8", String::from_utf8_lossy(kv.key())))?;
    Ok(KeyValue {
        key: key.to_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    header.map_or(0, |h| h.revision())
}

/// Whether an etcd error is "mvcc: required revision has been compacted".
fn is_compacted(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.message().contains("required revision has been compacted"))
}

fn is_future_revision(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.message().contains("required revision is a future revision"))
}

impl Backend for EtcdBackend {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, Error> {
        validate_key(key)?;
        let mut kv = self.client.kv_client();
        let response = self.call("get", key, kv.get(key, None)).await?;
        response
            .kvs()
            .first()
            .map(|item| self.convert("get", item))
            .transpose()
    }

    async fn list(&self, prefix: &str) -> Result<Listing, Error> {
        // A page pinned to the first page's revision can be compacted away
        // mid-listing; start again at the new revision when that happens.
        let mut attempts = 0;
        loop {
            match self.list_once(prefix).await {
                Err(Error::Operation { ref source, .. })
                    if attempts < 3
                        && source
                            .downcast_ref::<etcd_client::Error>()
                            .is_some_and(is_compacted) =>
                {
                    attempts += 1;
                }
                other => return other,
            }
        }
    }

    async fn create(&self, key: &str, value: &[u8]) -> Result<KeyValue, Error> {
        validate_key(key)?;
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, None)])
            .or_else([TxnOp::get(key, None)]);
        let response = self
            .call("create", key, self.client.kv_client().txn(txn))
            .await?;
        if !response.succeeded() {
            return Err(Error::AlreadyExists {
                key: key.to_owned(),
            });
        }
        let revision = header_revision(response.header());
        Ok(KeyValue {
            key: key.to_owned(),
            value: value.to_vec(),
            create_revision: revision,
            mod_revision: revision,
        })
    }

    async fn update(
        &self,
        key: &str,
        value: &[u8],
        expected_mod_revision: Revision,
    ) -> Result<KeyValue, Error> {
        validate_key(key)?;
        // `version > 0` keeps a missing key (whose mod revision reads as 0)
        // from matching an expected revision of 0.
        let txn = Txn::new()
            .when([
                Compare::version(key, CompareOp::Greater, 0),
                Compare::mod_revision(key, CompareOp::Equal, expected_mod_revision),
            ])
            .and_then([TxnOp::put(
                key,
                value,
                Some(PutOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let response = self
            .call("update", key, self.client.kv_client().txn(txn))
            .await?;
        let revision = header_revision(response.header());
        if !response.succeeded() {
            return match self.existing("update", response.op_responses())? {
                None => Err(Error::NotFound {
                    key: key.to_owned(),
                }),
                Some(current) => Err(Error::Conflict {
                    key: key.to_owned(),
                    expected: expected_mod_revision,
                    actual: current.mod_revision,
                }),
            };
        }
        let create_revision = response
            .op_responses()
            .into_iter()
            .find_map(|r| match r {
                TxnOpResponse::Put(put) => put.prev_key().map(|p| p.create_revision()),
                _ => None,
            })
            .unwrap_or(revision);
        Ok(KeyValue {
            key: key.to_owned(),
            value: value.to_vec(),
            create_revision,
            mod_revision: revision,
        })
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<KeyValue, Error> {
        validate_key(key)?;
        let mut kv = self.client.kv_client();
        let response = self
            .call(
                "put",
                key,
                kv.put(key, value, Some(PutOptions::new().with_prev_key())),
            )
            .await?;
        let revision = header_revision(response.header());
        Ok(KeyValue {
            key: key.to_owned(),
            value: value.to_vec(),
            create_revision: response
                .prev_key()
                .map_or(revision, |p| p.create_revision()),
            mod_revision: revision,
        })
    }

    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<Revision>,
    ) -> Result<KeyValue, Error> {
        validate_key(key)?;
        let guard: Vec<Compare> = expected_mod_revision
            .map(|rev| Compare::mod_revision(key, CompareOp::Equal, rev))
            .into_iter()
            .collect();
        let txn = Txn::new()
            .when(guard)
            .and_then([TxnOp::delete(
                key,
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let response = self
            .call("delete", key, self.client.kv_client().txn(txn))
            .await?;
        if !response.succeeded() {
            return match self.existing("delete", response.op_responses())? {
                None => Err(Error::NotFound {
                    key: key.to_owned(),
                }),
                Some(current) => Err(Error::Conflict {
                    key: key.to_owned(),
                    expected: expected_mod_revision.unwrap_or_default(),
                    actual: current.mod_revision,
                }),
            };
        }
        let deleted = response.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Delete(d) => d.prev_kvs().first().cloned(),
            _ => None,
        });
        match deleted {
            Some(prev) => self.convert("delete", &prev),
            None => Err(Error::NotFound {
                key: key.to_owned(),
            }),
        }
    }

    async fn watch(&self, prefix: &str, after_revision: Revision) -> Result<WatchStream, Error> {
        watch::watch(self, prefix, after_revision).await
    }

    async fn revision(&self) -> Result<Revision, Error> {
        connect::probe_revision(
            &self.client,
            &self.target,
            &self.identity,
            self.request_timeout,
        )
        .await
    }

    async fn compact(&self, revision: Revision) -> Result<(), Error> {
        let mut kv = self.client.kv_client();
        let request = kv.compact(revision, None);
        match tokio::time::timeout(self.request_timeout, request).await {
            Ok(Ok(_)) => Ok(()),
            // Already compacted at or past this revision: nothing to do.
            Ok(Err(e)) if is_compacted(&e) => Ok(()),
            Ok(Err(e)) if is_future_revision(&e) => Err(Error::FutureRevision {
                requested: revision,
                current: self.revision().await?,
            }),
            Ok(Err(e)) => Err(self.client_error("compact", "", e)),
            Err(_) => Err(Error::Timeout {
                target: self.target.clone(),
                operation: "compact",
                after: self.request_timeout,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_prefix_is_every_key() {
        assert_eq!(range_of(""), (vec![0], vec![0]));
        assert_eq!(
            range_of("/calico/"),
            (b"/calico/".to_vec(), b"/calico0".to_vec())
        );
    }
}
