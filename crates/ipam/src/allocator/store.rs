//! Typed reads and compare-and-swap writes of the IPAM records.
//!
//! Every write names the revision it read; a write that loses the race
//! comes back as [`Cas::Lost`] (never as an error), so callers re-read and
//! retry, and real failures (datastore down, malformed record) are errors.

use calico_datastore::{Backend, Error as DsError, Revision};
use ipnet::IpNet;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cidr::IpVersion;
use crate::error::IpamError;
use crate::record::{
    self, AffinityKey, AffinityType, AllocationBlock, BlockAffinity, IpamConfigRecord, IpamHandle,
};

/// Reads a stored block into its working form.
fn decode_block(key: &str, bytes: &[u8]) -> Result<AllocationBlock, IpamError> {
    let stored: calico_model::ipam::AllocationBlock = decode(key, bytes)?;
    AllocationBlock::from_record(stored).map_err(|reason| IpamError::InvalidRecord {
        key: key.to_owned(),
        reason,
    })
}

/// A record with the revision it was read at.
#[derive(Debug, Clone)]
pub(crate) struct Versioned<T> {
    pub value: T,
    pub revision: Revision,
}

/// The outcome of a conditional write.
#[derive(Debug)]
pub(crate) enum Cas<T> {
    Done(T),
    /// Someone else wrote (or created, or deleted) the key first.
    Lost,
}

impl<T> Cas<T> {
    pub fn lost(&self) -> bool {
        matches!(self, Cas::Lost)
    }
}

/// Turns a datastore answer about the data into [`Cas::Lost`].
fn cas<T>(
    operation: &'static str,
    key: &str,
    result: Result<T, DsError>,
) -> Result<Cas<T>, IpamError> {
    match result {
        Ok(v) => Ok(Cas::Done(v)),
        Err(
            DsError::Conflict { .. } | DsError::NotFound { .. } | DsError::AlreadyExists { .. },
        ) => Ok(Cas::Lost),
        Err(e) => Err(IpamError::datastore(operation, key, e)),
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // The records are plain data (strings, numbers, maps with string
    // keys), which always serialize.
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, IpamError> {
    serde_json::from_slice(bytes).map_err(|source| IpamError::Malformed {
        key: key.to_owned(),
        source,
    })
}

/// The typed view of one backend.
#[derive(Debug, Clone)]
pub(crate) struct Store<B> {
    pub backend: B,
}

impl<B: Backend> Store<B> {
    async fn get_raw(&self, key: &str) -> Result<Option<(Vec<u8>, Revision)>, IpamError> {
        match self.backend.get(key).await {
            Ok(Some(kv)) => Ok(Some((kv.value, kv.mod_revision))),
            Ok(None) => Ok(None),
            Err(e) => Err(IpamError::datastore("read", key, e)),
        }
    }

    async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Versioned<T>>, IpamError> {
        match self.get_raw(key).await? {
            Some((bytes, revision)) => Ok(Some(Versioned {
                value: decode(key, &bytes)?,
                revision,
            })),
            None => Ok(None),
        }
    }

    async fn create<T: Serialize>(&self, key: &str, value: &T) -> Result<Cas<Revision>, IpamError> {
        let r = self
            .backend
            .create(key, &encode(value))
            .await
            .map(|kv| kv.mod_revision);
        cas("create", key, r)
    }

    async fn update<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        revision: Revision,
    ) -> Result<Cas<Revision>, IpamError> {
        let r = self
            .backend
            .update(key, &encode(value), revision)
            .await
            .map(|kv| kv.mod_revision);
        cas("update", key, r)
    }

    async fn delete(&self, key: &str, revision: Revision) -> Result<Cas<()>, IpamError> {
        let r = self.backend.delete(key, Some(revision)).await.map(|_| ());
        cas("delete", key, r)
    }

    /// Every key and value under `prefix`.
    pub async fn list_raw(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>, Revision)>, IpamError> {
        let listing = self
            .backend
            .list(prefix)
            .await
            .map_err(|e| IpamError::datastore("list", prefix, e))?;
        Ok(listing
            .kvs
            .into_iter()
            .map(|kv| (kv.key, kv.value, kv.mod_revision))
            .collect())
    }

    // Blocks.

    /// A block, unless absent or soft-deleted.
    pub async fn get_block(
        &self,
        cidr: &IpNet,
    ) -> Result<Option<Versioned<AllocationBlock>>, IpamError> {
        let key = record::block_key(cidr);
        match self.get_raw(&key).await? {
            Some((bytes, revision)) => {
                let value = decode_block(&key, &bytes)?;
                Ok((!value.deleted).then_some(Versioned { value, revision }))
            }
            None => Ok(None),
        }
    }

    pub async fn create_block(
        &self,
        block: &AllocationBlock,
    ) -> Result<Cas<Versioned<AllocationBlock>>, IpamError> {
        let key = record::block_key(&block.cidr);
        Ok(match self.create(&key, &block.to_record()).await? {
            Cas::Done(revision) => Cas::Done(Versioned {
                value: block.clone(),
                revision,
            }),
            Cas::Lost => Cas::Lost,
        })
    }

    /// Writes a block back over the revision it was read at, bumping its
    /// sequence number first (every write does, as Calico's does).
    pub async fn update_block(
        &self,
        mut block: AllocationBlock,
        revision: Revision,
    ) -> Result<Cas<Versioned<AllocationBlock>>, IpamError> {
        block.sequence_number = block.sequence_number.wrapping_add(1);
        let key = record::block_key(&block.cidr);
        Ok(
            match self.update(&key, &block.to_record(), revision).await? {
                Cas::Done(revision) => Cas::Done(Versioned {
                    value: block,
                    revision,
                }),
                Cas::Lost => Cas::Lost,
            },
        )
    }

    pub async fn delete_block(
        &self,
        cidr: &IpNet,
        revision: Revision,
    ) -> Result<Cas<()>, IpamError> {
        self.delete(&record::block_key(cidr), revision).await
    }

    /// Every block of one family (or both), soft-deleted ones left out.
    pub async fn list_blocks(
        &self,
        version: Option<IpVersion>,
    ) -> Result<Vec<Versioned<AllocationBlock>>, IpamError> {
        let prefix = match version {
            Some(v) => record::block_prefix(v),
            None => record::block_root(),
        };
        let mut out = Vec::new();
        for (key, value, revision) in self.list_raw(&prefix).await? {
            if record::parse_block_key(&key).is_none() {
                continue;
            }
            let block = decode_block(&key, &value)?;
            if !block.deleted {
                out.push(Versioned {
                    value: block,
                    revision,
                });
            }
        }
        Ok(out)
    }

    // Affinities.

    pub async fn get_affinity(
        &self,
        kind: AffinityType,
        host: &str,
        cidr: &IpNet,
    ) -> Result<Option<Versioned<BlockAffinity>>, IpamError> {
        let key = record::affinity_key(kind, host, cidr);
        match self.get_raw(&key).await? {
            Some((bytes, revision)) => {
                let value =
                    record::decode_affinity(&bytes).map_err(|source| IpamError::Malformed {
                        key: key.clone(),
                        source,
                    })?;
                Ok((!value.deleted).then_some(Versioned { value, revision }))
            }
            None => Ok(None),
        }
    }

    pub async fn create_affinity(
        &self,
        kind: AffinityType,
        host: &str,
        cidr: &IpNet,
        value: &BlockAffinity,
    ) -> Result<Cas<Versioned<BlockAffinity>>, IpamError> {
        let key = record::affinity_key(kind, host, cidr);
        Ok(match self.create(&key, value).await? {
            Cas::Done(revision) => Cas::Done(Versioned {
                value: value.clone(),
                revision,
            }),
            Cas::Lost => Cas::Lost,
        })
    }

    pub async fn update_affinity(
        &self,
        kind: AffinityType,
        host: &str,
        cidr: &IpNet,
        value: &BlockAffinity,
        revision: Revision,
    ) -> Result<Cas<Versioned<BlockAffinity>>, IpamError> {
        let key = record::affinity_key(kind, host, cidr);
        Ok(match self.update(&key, value, revision).await? {
            Cas::Done(revision) => Cas::Done(Versioned {
                value: value.clone(),
                revision,
            }),
            Cas::Lost => Cas::Lost,
        })
    }

    pub async fn delete_affinity(
        &self,
        kind: AffinityType,
        host: &str,
        cidr: &IpNet,
        revision: Revision,
    ) -> Result<Cas<()>, IpamError> {
        self.delete(&record::affinity_key(kind, host, cidr), revision)
            .await
    }

    /// The blocks one owner has an affinity for (in any state), with the
    /// affinity as read.
    pub async fn affinities_of(
        &self,
        kind: AffinityType,
        host: &str,
        version: IpVersion,
    ) -> Result<Vec<(IpNet, Versioned<BlockAffinity>)>, IpamError> {
        let prefix = record::affinity_prefix(kind, host, version);
        let mut out = Vec::new();
        for (key, value, revision) in self.list_raw(&prefix).await? {
            let Some(parsed) = record::parse_affinity_key(&key).filter(|k| k.host == host) else {
                continue;
            };
            let value = record::decode_affinity(&value).map_err(|source| IpamError::Malformed {
                key: key.clone(),
                source,
            })?;
            if !value.deleted {
                out.push((parsed.cidr, Versioned { value, revision }));
            }
        }
        Ok(out)
    }

    /// The blocks one owner has an affinity for (in any state).
    pub async fn affine_blocks(
        &self,
        kind: AffinityType,
        host: &str,
        version: IpVersion,
    ) -> Result<Vec<IpNet>, IpamError> {
        Ok(self
            .affinities_of(kind, host, version)
            .await?
            .into_iter()
            .map(|(cidr, _)| cidr)
            .collect())
    }

    /// Every affinity of one kind, with its state.
    pub async fn list_affinities(
        &self,
        kind: AffinityType,
    ) -> Result<Vec<(AffinityKey, Versioned<BlockAffinity>)>, IpamError> {
        let mut out = Vec::new();
        for (key, value, revision) in self.list_raw(&record::affinity_root(kind)).await? {
            let Some(parsed) = record::parse_affinity_key(&key) else {
                continue;
            };
            let value = record::decode_affinity(&value).map_err(|source| IpamError::Malformed {
                key: key.clone(),
                source,
            })?;
            if !value.deleted {
                out.push((parsed, Versioned { value, revision }));
            }
        }
        Ok(out)
    }

    // Handles.

    pub async fn get_handle(
        &self,
        handle: &str,
    ) -> Result<Option<Versioned<IpamHandle>>, IpamError> {
        Ok(self
            .get::<IpamHandle>(&record::handle_key(handle))
            .await?
            .filter(|h| !h.value.deleted))
    }

    pub async fn create_handle(
        &self,
        handle: &str,
        value: &IpamHandle,
    ) -> Result<Cas<Revision>, IpamError> {
        self.create(&record::handle_key(handle), value).await
    }

    pub async fn update_handle(
        &self,
        handle: &str,
        value: &IpamHandle,
        revision: Revision,
    ) -> Result<Cas<Revision>, IpamError> {
        self.update(&record::handle_key(handle), value, revision)
            .await
    }

    pub async fn delete_handle(
        &self,
        handle: &str,
        revision: Revision,
    ) -> Result<Cas<()>, IpamError> {
        self.delete(&record::handle_key(handle), revision).await
    }

    /// Every handle, with its revision.
    pub async fn list_handles(&self) -> Result<Vec<(String, Versioned<IpamHandle>)>, IpamError> {
        let mut out = Vec::new();
        for (key, value, revision) in self.list_raw(&record::handle_root()).await? {
            let Some(id) = record::parse_handle_key(&key) else {
                continue;
            };
            let handle: IpamHandle = decode(&key, &value)?;
            if !handle.deleted {
                out.push((
                    id.to_owned(),
                    Versioned {
                        value: handle,
                        revision,
                    },
                ));
            }
        }
        Ok(out)
    }

    // Global settings.

    pub async fn get_config(&self) -> Result<Option<Versioned<IpamConfigRecord>>, IpamError> {
        self.get(&record::config_key()).await
    }

    pub async fn put_config(
        &self,
        value: &IpamConfigRecord,
        revision: Option<Revision>,
    ) -> Result<Cas<Revision>, IpamError> {
        match revision {
            Some(r) => self.update(&record::config_key(), value, r).await,
            None => self.create(&record::config_key(), value).await,
        }
    }
}
