//! An embedded datastore file holding what calico-node would have created
//! before the first pod: ClusterInformation, IP pools and the node.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use calico_client::Client;
use calico_datastore::EmbeddedBackend;
use calico_ipam::report::IpStatus;
use calico_model::{IpPool, IpPoolSpec, Node, ObjectMeta, WorkloadEndpoint};

/// The node every test's plugin configuration names.
pub const NODE: &str = "node-1";

/// A datastore file in its own temporary directory.
#[derive(Debug)]
pub struct Datastore {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Datastore {
    /// An IPv4 pool `10.66.0.0/16` and an IPv6 pool `fd00:66::/48`.
    pub fn new() -> Self {
        Self::with_pools(&[
            ("default-ipv4-ippool", "10.66.0.0/16", 26),
            ("default-ipv6-ippool", "fd00:66::/48", 122),
        ])
    }

    /// The given pools, as `(name, cidr, block size)`.
    pub fn with_pools(pools: &[(&str, &str, u8)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calico.db");
        block_on(async {
            seed(
                &Client::new(EmbeddedBackend::open(&path).await.unwrap()),
                pools,
            )
            .await;
        });
        Datastore { _dir: dir, path }
    }

    /// The file a plugin is pointed at with `EMBEDDED_DATASTORE_PATH`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn endpoint(&self, namespace: &str, name: &str) -> Option<WorkloadEndpoint> {
        block_on(async {
            let client = Client::new(EmbeddedBackend::open(&self.path).await.unwrap());
            client
                .get_typed::<WorkloadEndpoint>(namespace, name)
                .await
                .ok()
        })
    }

    /// Every WorkloadEndpoint, in all namespaces.
    pub fn endpoints(&self) -> Vec<WorkloadEndpoint> {
        block_on(async {
            let client = Client::new(EmbeddedBackend::open(&self.path).await.unwrap());
            client
                .list_typed::<WorkloadEndpoint>(None, None)
                .await
                .unwrap()
        })
    }

    pub fn handle_addresses(&self, handle: &str) -> Vec<IpAddr> {
        block_on(async {
            let ipam = calico_ipam::Ipam::new(EmbeddedBackend::open(&self.path).await.unwrap());
            ipam.get_ips_by_handle(handle).await.unwrap()
        })
    }

    /// Whether IPAM holds `address` for anyone.
    pub fn is_assigned(&self, address: IpAddr) -> bool {
        block_on(async {
            let ipam = calico_ipam::Ipam::new(EmbeddedBackend::open(&self.path).await.unwrap());
            matches!(
                ipam.ip_status(address).await.unwrap(),
                IpStatus::Assigned { .. }
            )
        })
    }
}

/// Writes what calico-node creates before the first pod into any
/// datastore: ClusterInformation, the pools as `(name, cidr, block size)`,
/// and the node [`NODE`].
pub async fn seed<B: calico_datastore::Backend>(client: &Client<B>, pools: &[(&str, &str, u8)]) {
    client.ensure_initialized("v3.30.0", "k8s").await.unwrap();
    for (name, cidr, block_size) in pools {
        let pool = IpPool {
            metadata: ObjectMeta::named(*name),
            spec: IpPoolSpec {
                cidr: (*cidr).into(),
                block_size: i64::from(*block_size),
                ..Default::default()
            },
            ..Default::default()
        };
        client.create_typed(pool).await.unwrap();
    }
    let node = Node {
        metadata: ObjectMeta::named(NODE),
        ..Default::default()
    };
    client.create_typed(node).await.unwrap();
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}
