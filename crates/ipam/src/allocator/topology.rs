//! The resources IPAM consults but does not own: IP pools, IP
//! reservations, nodes (for their labels) and workload endpoints, read
//! from the same datastore at Calico's keys with calico-model's decoding.

use std::collections::BTreeMap;

use calico_datastore::Backend;
use calico_model::keys::{from_etcd_value, parse_resource_key, resource_key, resource_prefix};
use calico_model::{AnyResource, IpPool, IpReservation, Kind, Node, WorkloadEndpoint};

use super::store::Store;
use crate::error::IpamError;

/// Decodes a stored resource of the kind its key names.
fn decode_resource<T>(
    key: &str,
    bytes: &[u8],
    revision: i64,
    pick: fn(AnyResource) -> Option<T>,
) -> Result<T, IpamError> {
    let invalid = |reason: String| IpamError::InvalidRecord {
        key: key.to_owned(),
        reason,
    };
    let parsed = parse_resource_key(key).map_err(|e| invalid(e.to_string()))?;
    let resource = from_etcd_value(&parsed, bytes, revision).map_err(|e| invalid(e.to_string()))?;
    pick(resource).ok_or_else(|| invalid(format!("not a {}", parsed.kind.as_str())))
}

impl<B: Backend> Store<B> {
    async fn list_resources<T>(
        &self,
        kind: Kind,
        pick: fn(AnyResource) -> Option<T>,
    ) -> Result<Vec<T>, IpamError> {
        self.list_raw(&resource_prefix(kind, None))
            .await?
            .into_iter()
            .map(|(key, value, revision)| decode_resource(&key, &value, revision, pick))
            .collect()
    }

    /// Every IP pool (enabled or not).
    pub async fn pools(&self) -> Result<Vec<IpPool>, IpamError> {
        self.list_resources(Kind::IpPool, |r| match r {
            AnyResource::IpPool(p) => Some(p),
            _ => None,
        })
        .await
    }

    pub async fn reservations(&self) -> Result<Vec<IpReservation>, IpamError> {
        self.list_resources(Kind::IpReservation, |r| match r {
            AnyResource::IpReservation(p) => Some(p),
            _ => None,
        })
        .await
    }

    pub async fn nodes(&self) -> Result<Vec<Node>, IpamError> {
        self.list_resources(Kind::Node, |r| match r {
            AnyResource::Node(n) => Some(n),
            _ => None,
        })
        .await
    }

    pub async fn workload_endpoints(&self) -> Result<Vec<WorkloadEndpoint>, IpamError> {
        self.list_resources(Kind::WorkloadEndpoint, |r| match r {
            AnyResource::WorkloadEndpoint(w) => Some(w),
            _ => None,
        })
        .await
    }

    /// A node's labels, `None` when the node does not exist.
    pub async fn node_labels(
        &self,
        node: &str,
    ) -> Result<Option<BTreeMap<String, String>>, IpamError> {
        let key = resource_key(Kind::Node, "", node);
        match self.backend.get(&key).await {
            Ok(Some(kv)) => {
                let n = decode_resource(&key, &kv.value, kv.mod_revision, |r| match r {
                    AnyResource::Node(n) => Some(n),
                    _ => None,
                })?;
                Ok(Some(n.metadata.labels))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(IpamError::datastore("read", key, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_calico_stores() {
        let stored = br#"{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"default-ipv4-ippool","uid":"5d0c","creationTimestamp":"2024-05-01T10:00:00Z"},"spec":{"cidr":"192.168.0.0/16","ipipMode":"Always","natOutgoing":true,"blockSize":26,"nodeSelector":"all()"}}"#;
        let key = "/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool";
        let pool = decode_resource(key, stored, 7, |r| match r {
            AnyResource::IpPool(p) => Some(p),
            _ => None,
        })
        .unwrap();
        assert_eq!(pool.metadata.name, "default-ipv4-ippool");
        assert_eq!(pool.spec.block_size, 26);
        let err = decode_resource(key, b"{", 7, |r| match r {
            AnyResource::IpPool(p) => Some(p),
            _ => None,
        })
        .unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
    }
}
