//! The resources IPAM consults but does not own: IP pools, IP
//! reservations and node labels, read from the same datastore at Calico's
//! keys (`/calico/resources/v3/projectcalico.org/<plural>/<name>`).

use std::collections::BTreeMap;

use calico_datastore::Backend;
use calico_model::{IpPool, IpReservation, Node};
use serde::de::DeserializeOwned;

use super::store::Store;
use crate::error::IpamError;

/// Where Calico keeps v3 resources in etcd.
pub const RESOURCE_ROOT: &str = "/calico/resources/v3/projectcalico.org/";

/// The key of a cluster-scoped resource.
pub fn resource_key(plural: &str, name: &str) -> String {
    format!("{RESOURCE_ROOT}{plural}/{name}")
}

/// Decodes a stored resource: the typed struct without the `kind` and
/// `apiVersion` fields Calico stores alongside.
pub(crate) fn decode_resource<T: DeserializeOwned>(
    key: &str,
    bytes: &[u8],
) -> Result<T, IpamError> {
    let malformed = |source| IpamError::Malformed {
        key: key.to_owned(),
        source,
    };
    let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(malformed)?;
    if let Some(obj) = value.as_object_mut() {
        obj.remove("kind");
        obj.remove("apiVersion");
    }
    serde_json::from_value(value).map_err(malformed)
}

impl<B: Backend> Store<B> {
    async fn list_resources<T: DeserializeOwned>(&self, plural: &str) -> Result<Vec<T>, IpamError> {
        let prefix = format!("{RESOURCE_ROOT}{plural}/");
        self.list_raw(&prefix)
            .await?
            .into_iter()
            .map(|(key, value, _)| decode_resource(&key, &value))
            .collect()
    }

    /// Every IP pool (enabled or not).
    pub async fn pools(&self) -> Result<Vec<IpPool>, IpamError> {
        self.list_resources("ippools").await
    }

    pub async fn reservations(&self) -> Result<Vec<IpReservation>, IpamError> {
        self.list_resources("ipreservations").await
    }

    pub async fn nodes(&self) -> Result<Vec<Node>, IpamError> {
        self.list_resources("nodes").await
    }

    /// A node's labels, `None` when the node does not exist.
    pub async fn node_labels(
        &self,
        node: &str,
    ) -> Result<Option<BTreeMap<String, String>>, IpamError> {
        let key = resource_key("nodes", node);
        match self.backend.get(&key).await {
            Ok(Some(kv)) => Ok(Some(
                decode_resource::<Node>(&key, &kv.value)?.metadata.labels,
            )),
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
        let pool: IpPool = decode_resource("k", stored).unwrap();
        assert_eq!(pool.metadata.name, "default-ipv4-ippool");
        assert_eq!(pool.spec.block_size, 26);
        let err = decode_resource::<IpPool>("/calico/x", b"{").unwrap_err();
        assert!(err.to_string().contains("/calico/x"));
        assert_eq!(
            resource_key("nodes", "n1"),
            "/calico/resources/v3/projectcalico.org/nodes/n1"
        );
    }
}
