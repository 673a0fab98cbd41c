//! Test doubles for the plugin's services. The allocator here is a
//! stand-in for Calico's block allocator, for tests only: it hands out
//! addresses from one /26 and one /122 in order.
#![allow(dead_code)]

pub mod datastore;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use calico_cni::dataplane::{Dataplane, DataplaneError};
use calico_cni::endpoint::{Deleted, EndpointStore, PodInfo, PodInfoSource, StoreError};
use calico_cni::env::CniEnv;
use calico_cni::ipam::{
    AddressAllocator, AllocatorError, AutoAssign, AutoAssigned, ExplicitAssign,
};
use calico_cni::plugin::{HostFacts, Invocation};
use calico_model::{Profile, WorkloadEndpoint};
use calico_netlink::{Link, Removed, WorkloadInterface, WorkloadLinks};
use futures::future::BoxFuture;
use ipnet::IpNet;

/// WorkloadEndpoints and profiles in memory, with revisions.
#[derive(Debug, Default)]
pub struct MemoryStore {
    pub endpoints: Mutex<BTreeMap<(String, String), WorkloadEndpoint>>,
    pub profiles: Mutex<BTreeMap<String, Profile>>,
    revision: Mutex<u64>,
    pub not_ready: AtomicBool,
    pub fail_apply: AtomicBool,
    pub fail_profile: AtomicBool,
}

impl MemoryStore {
    pub fn endpoint(&self, namespace: &str, name: &str) -> Option<WorkloadEndpoint> {
        self.endpoints
            .lock()
            .unwrap()
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    pub fn endpoint_names(&self) -> Vec<String> {
        self.endpoints
            .lock()
            .unwrap()
            .keys()
            .map(|(ns, n)| format!("{ns}/{n}"))
            .collect()
    }
}

impl EndpointStore for MemoryStore {
    fn datastore_ready(&self) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async { Ok(!self.not_ready.load(Ordering::SeqCst)) })
    }

    fn get<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<WorkloadEndpoint>, StoreError>> {
        Box::pin(async move { Ok(self.endpoint(namespace, name)) })
    }

    fn apply<'a>(
        &'a self,
        endpoint: &'a WorkloadEndpoint,
    ) -> BoxFuture<'a, Result<WorkloadEndpoint, StoreError>> {
        Box::pin(async move {
            if self.fail_apply.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("injected apply failure".into()));
            }
            let key = (
                endpoint.metadata.namespace.clone(),
                endpoint.metadata.name.clone(),
            );
            let mut endpoints = self.endpoints.lock().unwrap();
            let current = endpoints
                .get(&key)
                .map(|e| e.metadata.resource_version.clone());
            match (&current, endpoint.metadata.resource_version.as_str()) {
                (Some(_), "") => {
                    return Err(StoreError::Rejected {
                        kind: "WorkloadEndpoint",
                        name: key.1,
                        reason: "already exists".into(),
                    });
                }
                (Some(stored), given) if stored != given => {
                    return Err(StoreError::Conflict {
                        kind: "WorkloadEndpoint",
                        name: key.1,
                    });
                }
                _ => {}
            }
            let mut revision = self.revision.lock().unwrap();
            *revision += 1;
            let mut stored = endpoint.clone();
            stored.metadata.resource_version = revision.to_string();
            endpoints.insert(key, stored.clone());
            Ok(stored)
        })
    }

    fn delete<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        expected_revision: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Deleted, StoreError>> {
        Box::pin(async move {
            let key = (namespace.to_string(), name.to_string());
            let mut endpoints = self.endpoints.lock().unwrap();
            match endpoints.get(&key) {
                None => Ok(Deleted::NotFound),
                Some(e) if expected_revision.is_some_and(|r| r != e.metadata.resource_version) => {
                    Err(StoreError::Conflict {
                        kind: "WorkloadEndpoint",
                        name: name.to_string(),
                    })
                }
                Some(_) => {
                    endpoints.remove(&key);
                    Ok(Deleted::Deleted)
                }
            }
        })
    }

    fn ensure_profile<'a>(&'a self, profile: &'a Profile) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if self.fail_profile.load(Ordering::SeqCst) {
                return Err(StoreError::Rejected {
                    kind: "Profile",
                    name: profile.metadata.name.clone(),
                    reason: "injected profile failure".into(),
                });
            }
            self.profiles
                .lock()
                .unwrap()
                .entry(profile.metadata.name.clone())
                .or_insert_with(|| profile.clone());
            Ok(())
        })
    }
}

/// A stand-in for Calico's block allocator: sequential addresses from
/// `10.65.0.0/26` and `fd00:65::/122`, recorded by handle.
#[derive(Debug, Default)]
pub struct TestAllocator {
    pub handles: Mutex<BTreeMap<String, (String, Vec<IpAddr>)>>,
    next: Mutex<(u32, u32)>,
    pub fail_v6: AtomicBool,
    pub fail_release: AtomicBool,
}

impl TestAllocator {
    pub fn held(&self) -> BTreeMap<String, Vec<IpAddr>> {
        self.handles
            .lock()
            .unwrap()
            .iter()
            .map(|(h, (_, ips))| (h.clone(), ips.clone()))
            .collect()
    }

    fn record(&self, handle: &str, node: &str, ip: IpAddr) -> Result<(), AllocatorError> {
        let mut handles = self.handles.lock().unwrap();
        if handles.values().any(|(_, ips)| ips.contains(&ip)) {
            return Err(AllocatorError::NotAvailable(format!("{ip} is in use")));
        }
        handles
            .entry(handle.to_string())
            .or_insert_with(|| (node.to_string(), Vec::new()))
            .1
            .push(ip);
        Ok(())
    }
}

impl AddressAllocator for TestAllocator {
    fn auto_assign<'a>(
        &'a self,
        request: &'a AutoAssign,
    ) -> BoxFuture<'a, Result<AutoAssigned, AllocatorError>> {
        Box::pin(async move {
            let mut assigned = AutoAssigned::default();
            for _ in 0..request.num_v4 {
                let n = {
                    let mut next = self.next.lock().unwrap();
                    next.0 += 1;
                    next.0
                };
                let ip: IpAddr = format!("10.65.0.{n}").parse().unwrap();
                self.record(&request.handle_id, &request.node, ip)?;
                assigned.v4.push(IpNet::new(ip, 26).unwrap());
            }
            for _ in 0..request.num_v6 {
                if self.fail_v6.load(Ordering::SeqCst) {
                    // Like Calico's allocator: what was assigned stays
                    // assigned; the caller must release the handle.
                    return Ok(assigned);
                }
                let n = {
                    let mut next = self.next.lock().unwrap();
                    next.1 += 1;
                    next.1
                };
                let ip: IpAddr = format!("fd00:65::{n:x}").parse().unwrap();
                self.record(&request.handle_id, &request.node, ip)?;
                assigned.v6.push(IpNet::new(ip, 122).unwrap());
            }
            Ok(assigned)
        })
    }

    fn assign_ip<'a>(
        &'a self,
        request: &'a ExplicitAssign,
    ) -> BoxFuture<'a, Result<(), AllocatorError>> {
        Box::pin(async move { self.record(&request.handle_id, &request.node, request.address) })
    }

    fn release_by_handle<'a>(
        &'a self,
        handle_id: &'a str,
    ) -> BoxFuture<'a, Result<(), AllocatorError>> {
        Box::pin(async move {
            if self.fail_release.load(Ordering::SeqCst) {
                return Err(AllocatorError::Unavailable(
                    "injected release failure".into(),
                ));
            }
            self.handles.lock().unwrap().remove(handle_id);
            Ok(())
        })
    }

    fn addresses_by_handle<'a>(
        &'a self,
        handle_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<IpAddr>, AllocatorError>> {
        Box::pin(async move {
            Ok(self
                .handles
                .lock()
                .unwrap()
                .get(handle_id)
                .map(|(_, ips)| ips.clone())
                .unwrap_or_default())
        })
    }

    fn release_handles_except<'a>(
        &'a self,
        node: &'a str,
        handle_prefix: &'a str,
        keep: &'a BTreeSet<String>,
    ) -> BoxFuture<'a, Result<Vec<String>, AllocatorError>> {
        Box::pin(async move {
            let mut handles = self.handles.lock().unwrap();
            let stale: Vec<String> = handles
                .iter()
                .filter(|(h, (n, _))| {
                    n == node && h.starts_with(handle_prefix) && !keep.contains(*h)
                })
                .map(|(h, _)| h.clone())
                .collect();
            for h in &stale {
                handles.remove(h);
            }
            Ok(stale)
        })
    }

    fn ready<'a>(&'a self) -> BoxFuture<'a, Result<(), AllocatorError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Records interfaces instead of creating them.
#[derive(Debug, Default)]
pub struct FakeDataplane {
    /// (netns, pod ifname) → spec.
    pub interfaces: Mutex<BTreeMap<(PathBuf, String), WorkloadInterface>>,
    pub fail_add: AtomicBool,
    pub fail_remove: AtomicBool,
    pub removals: Mutex<Vec<(PathBuf, String)>>,
}

impl Dataplane for FakeDataplane {
    fn add(&self, netns: &Path, spec: &WorkloadInterface) -> Result<WorkloadLinks, DataplaneError> {
        if self.fail_add.load(Ordering::SeqCst) {
            return Err(DataplaneError::Other("injected interface failure".into()));
        }
        let key = (netns.to_path_buf(), spec.pod_ifname.clone());
        let mut interfaces = self.interfaces.lock().unwrap();
        if interfaces.contains_key(&key) {
            return Err(DataplaneError::Other(format!(
                "{} already exists",
                spec.pod_ifname
            )));
        }
        interfaces.insert(key, spec.clone());
        let link = |name: &str, index, mac| Link {
            index,
            name: name.to_string(),
            mac: Some(mac),
            mtu: spec.mtu,
            up: true,
            kind: Some("veth".into()),
        };
        Ok(WorkloadLinks {
            host: link(&spec.host_ifname, 10, calico_netlink::HOST_SIDE_MAC),
            pod: link(
                &spec.pod_ifname,
                2,
                spec.pod_mac.unwrap_or([0x02, 0, 0, 0, 0, 1]),
            ),
        })
    }

    fn remove(&self, netns: &Path, pod_ifname: &str) -> Result<Removed, DataplaneError> {
        if self.fail_remove.load(Ordering::SeqCst) {
            return Err(DataplaneError::Other("injected removal failure".into()));
        }
        self.removals
            .lock()
            .unwrap()
            .push((netns.to_path_buf(), pod_ifname.to_string()));
        let removed = self
            .interfaces
            .lock()
            .unwrap()
            .remove(&(netns.to_path_buf(), pod_ifname.to_string()));
        Ok(if removed.is_some() {
            Removed::Deleted
        } else {
            Removed::AlreadyGone
        })
    }

    fn check(
        &self,
        netns: &Path,
        spec: &WorkloadInterface,
    ) -> Result<WorkloadLinks, DataplaneError> {
        let interfaces = self.interfaces.lock().unwrap();
        match interfaces.get(&(netns.to_path_buf(), spec.pod_ifname.clone())) {
            Some(existing) if existing.addresses == spec.addresses => {
                drop(interfaces);
                let links = WorkloadLinks {
                    host: Link {
                        index: 10,
                        name: spec.host_ifname.clone(),
                        mac: Some(calico_netlink::HOST_SIDE_MAC),
                        mtu: spec.mtu,
                        up: true,
                        kind: None,
                    },
                    pod: Link {
                        index: 2,
                        name: spec.pod_ifname.clone(),
                        mac: None,
                        mtu: spec.mtu,
                        up: true,
                        kind: None,
                    },
                };
                Ok(links)
            }
            Some(_) => Err(DataplaneError::Other("addresses differ".into())),
            None => Err(DataplaneError::Other(format!(
                "interface {} is missing",
                spec.pod_ifname
            ))),
        }
    }
}

/// Pod metadata from a map.
#[derive(Debug, Default)]
pub struct StaticPods(pub BTreeMap<(String, String), PodInfo>);

impl PodInfoSource for StaticPods {
    fn pod<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<PodInfo>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .0
                .get(&(namespace.to_string(), name.to_string()))
                .cloned())
        })
    }
}

/// An invocation as a runtime would make it.
pub fn invocation(
    command: &str,
    container_id: &str,
    netns: Option<&str>,
    args: &str,
    conf: &serde_json::Value,
) -> Invocation {
    let mut vars = BTreeMap::from([
        ("CNI_COMMAND", command.to_string()),
        ("CNI_CONTAINERID", container_id.to_string()),
        ("CNI_IFNAME", "eth0".to_string()),
        ("CNI_PATH", "/usr/lib/cni".to_string()),
        ("CNI_ARGS", args.to_string()),
    ]);
    if let Some(netns) = netns {
        vars.insert("CNI_NETNS", netns.to_string());
    }
    let env = CniEnv::from_lookup(|k| vars.get(k).cloned()).expect("valid environment");
    let facts = HostFacts {
        nodename_file: None,
        os_hostname: "unused".into(),
        mtu_file: None,
        interface_prefix: None,
    };
    Invocation::new(env, serde_json::to_vec(conf).unwrap(), &facts).expect("valid invocation")
}

/// A Calico network configuration with Calico's IPAM.
pub fn calico_conf(version: &str) -> serde_json::Value {
    serde_json::json!({
        "cniVersion": version,
        "name": "k8s-pod-network",
        "type": "calico",
        "nodename": "node-1",
        "mtu": 1440,
        "ipam": {"type": "calico-ipam"},
    })
}

pub fn pod_args(namespace: &str, pod: &str, container_id: &str) -> String {
    format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={pod};K8S_POD_INFRA_CONTAINER_ID={container_id};K8S_POD_UID=uid-{pod}"
    )
}

/// A simulated node for tests that need root: a namespace with an uplink
/// (a veth pair inside it) carrying the node's addresses and default
/// routes, and forwarding on as the node agent sets it.
pub fn node_namespace() -> calico_netlink::testing::ScratchNetns {
    let ns = calico_netlink::testing::ScratchNetns::new("cninode");
    for cmd in [
        "ip link add uplink0 type veth peer name uplink1",
        "ip link set uplink0 up",
        "ip link set uplink1 up",
        "ip addr add 10.99.0.1/32 dev uplink0",
        "ip -6 addr add fd00:99::1/128 dev uplink0 nodad",
        "ip route add default dev uplink0",
        "ip -6 route add default dev uplink0",
        "sysctl -q -w net.ipv4.ip_forward=1",
        "sysctl -q -w net.ipv6.conf.all.forwarding=1",
    ] {
        ns.exec(&cmd.split(' ').collect::<Vec<_>>())
            .expect("node setup");
    }
    ns
}
