//! Start-up, as Calico's calico-node runs it before the agent: register
//! this node (its name, its IPv4/IPv6 address from `IP`/`IP6` or
//! autodetection, its AS number from `AS`), create the default IP pools
//! when the datastore has none of a family, make sure the cluster-wide
//! resources every Calico datastore holds exist (ClusterInformation, the
//! built-in tiers, the `default` FelixConfiguration, BGPConfiguration and
//! IPAMConfiguration, and this node's `node.<name>` FelixConfiguration),
//! give the node the tunnel addresses its pools call for ([`tunnel`]),
//! and store the node name.
//!
//! Every input that cannot be used stops start-up with an error naming it,
//! as Calico's start-up does; nothing is half-written for a bad variable,
//! because everything is checked before the first write.

pub mod autodetect;
pub mod host;
pub mod pools;
pub mod tunnel;

use std::net::IpAddr;
use std::sync::Arc;

use calico_client::Client;
use calico_datastore::Backend;
use calico_model::bgp::{BgpConfiguration, BgpConfigurationSpec};
use calico_model::node::{NodeBgpSpec, NodeInterface, OrchRef};
use calico_model::{
    AsNumber, FelixConfiguration, FelixConfigurationSpec, IpPool, IpamConfiguration,
    IpamConfigurationSpec, Node, ObjectMeta,
};
use ipnet::IpNet;
use tracing::{info, warn};

use crate::env::Env;
use autodetect::{AutodetectError, Method};
use host::{HostError, HostInterface, HostNetns};
use pools::PoolConfigError;

/// The version written to ClusterInformation.
pub const CALICO_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

/// Why start-up stopped.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{operation}")]
    Datastore {
        operation: String,
        #[source]
        source: Box<calico_client::Error>,
    },
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Autodetect(#[from] AutodetectError),
    #[error("{variable}={value:?} is not a valid IPv{version} address or CIDR")]
    Address {
        variable: &'static str,
        value: String,
        version: u8,
    },
    #[error("AS={value:?} is not a valid AS number")]
    AsNumber { value: String },
    #[error(
        "no IPv4 or IPv6 address configured or detected for node {node}; Calico networking needs one (set IP, IP6 or IP_AUTODETECTION_METHOD)"
    )]
    NoAddress { node: String },
    #[error(
        "node {other} already uses the IPv{version} address {address}; give this node another address, or set DISABLE_NODE_IP_CHECK=true"
    )]
    AddressConflict {
        other: String,
        address: IpAddr,
        version: u8,
    },
    #[error(transparent)]
    Pools(#[from] PoolConfigError),
    #[error(transparent)]
    Nodename(#[from] crate::nodename::NodenameError),
    #[error("the host probe thread stopped")]
    Probe,
    #[error("allocating the {tunnel} tunnel address of node {node}: {reason}")]
    TunnelAddress {
        tunnel: &'static str,
        node: String,
        reason: String,
    },
}

fn datastore(operation: impl Into<String>) -> impl FnOnce(calico_client::Error) -> StartupError {
    let operation = operation.into();
    move |source| StartupError::Datastore {
        operation,
        source: Box::new(source),
    }
}

/// What start-up did.
#[derive(Debug, Clone)]
pub struct StartupOutcome {
    pub node: Node,
    /// Names of the pools created (empty when pools existed or were not
    /// wanted).
    pub pools_created: Vec<String>,
}

/// Runs start-up for `node_name` against `client`, looking at the network
/// of `host`.
pub async fn run<B: Backend + Clone>(
    client: &Client<B>,
    env: &Env,
    node_name: &str,
    host: &HostNetns,
) -> Result<StartupOutcome, StartupError> {
    info!(node = node_name, version = CALICO_VERSION, "starting node");
    let probe = Probe::new(host.clone());
    let interfaces = probe.interfaces().await?;

    // Check everything that can be wrong in the environment before writing.
    let pool_plans = pools::plan_default_pools(
        env,
        &interfaces
            .iter()
            .flat_map(|i| i.addresses.iter().map(|a| a.addr()))
            .collect::<Vec<_>>(),
        ipv6_supported(env),
        random_bytes(),
    )?;
    let as_number = match env.get("AS") {
        Some(value) => Some(
            AsNumber::parse(value).ok_or_else(|| StartupError::AsNumber {
                value: value.to_owned(),
            })?,
        ),
        None => None,
    };

    let mut node = match client.get_typed::<Node>("", node_name).await {
        Ok(node) => node,
        Err(calico_client::Error::NotFound { .. }) => {
            info!(node = node_name, "building a new node resource");
            Node {
                metadata: ObjectMeta::named(node_name),
                ..Node::default()
            }
        }
        Err(e) => return Err(datastore(format!("reading node {node_name}"))(e)),
    };
    let before = node.clone();

    if env.get("CALICO_NETWORKING_BACKEND") != Some("none") {
        let changed = configure_addresses(&mut node, env, &interfaces, &probe).await?;
        if changed && !env.flag("DISABLE_NODE_IP_CHECK", false) {
            check_conflicts(client, &node).await?;
        }
        if let Some(asn) = as_number {
            info!(%asn, "using the AS number from the environment");
            node.spec
                .bgp
                .get_or_insert_with(NodeBgpSpec::default)
                .as_number = Some(asn);
        }
    }
    if let Some(node_ref) = env.get("CALICO_K8S_NODE_REF") {
        node.spec.orch_refs = vec![OrchRef {
            node_name: node_ref.to_owned(),
            orchestrator: "k8s".into(),
        }];
    }
    if node != before || node.metadata.resource_version.is_empty() {
        node = if node.metadata.resource_version.is_empty() {
            client.create_typed(node).await
        } else {
            client.update_typed(node).await
        }
        .map_err(datastore(format!("registering node {node_name}")))?;
        info!(node = node_name, "node resource written");
    }

    let pools_created = create_default_pools(client, &pool_plans).await?;
    tunnel::ensure(client, node_name).await?;
    ensure_default_config(client, env, node_name).await?;
    crate::nodename::store(&crate::nodename::nodename_file(env), node_name)?;
    info!(node = node_name, "start-up complete");
    Ok(StartupOutcome {
        node,
        pools_created,
    })
}

/// Host lookups run on a blocking thread (they open netlink sockets and
/// may enter a namespace on a short-lived thread of their own).
#[derive(Debug, Clone)]
struct Probe {
    host: Arc<HostNetns>,
}

impl Probe {
    fn new(host: HostNetns) -> Probe {
        Probe {
            host: Arc::new(host),
        }
    }

    async fn interfaces(&self) -> Result<Vec<HostInterface>, StartupError> {
        let host = self.host.clone();
        tokio::task::spawn_blocking(move || host.interfaces())
            .await
            .map_err(|_| StartupError::Probe)?
            .map_err(StartupError::from)
    }

    async fn reach(&self, destination: &str, ipv6: bool) -> Result<IpAddr, StartupError> {
        let host = self.host.clone();
        let destination = destination.to_owned();
        tokio::task::spawn_blocking(move || host.reach(&destination, ipv6))
            .await
            .map_err(|_| StartupError::Probe)?
            .map_err(StartupError::from)
    }
}

/// `IP`/`IP6` as Calico reads them: `autodetect`, `none`, empty, or an
/// address or CIDR. Returns whether the node's addresses or interfaces
/// changed.
async fn configure_addresses(
    node: &mut Node,
    env: &Env,
    interfaces: &[HostInterface],
    probe: &Probe,
) -> Result<bool, StartupError> {
    let mut bgp = node.spec.bgp.clone().unwrap_or_default();
    let old = (
        bgp.ipv4_address.clone(),
        bgp.ipv6_address.clone(),
        node.spec.interfaces.clone(),
    );
    let ip4 = env.get("IP").unwrap_or_default();
    let ip6 = env.get("IP6").unwrap_or_default();

    if ip4 == "autodetect" || (ip4.is_empty() && bgp.ipv4_address.is_empty()) {
        match detect(env, 4, interfaces, probe).await {
            Ok((interface, cidr)) => {
                info!(%cidr, interface, "using autodetected IPv4 address");
                bgp.ipv4_address = cidr.to_string();
            }
            Err(e) if bgp.ipv4_address.is_empty() => return Err(e),
            Err(e) => warn!(
                error = %e,
                kept = bgp.ipv4_address,
                "autodetection of the IPv4 address failed; keeping the existing one"
            ),
        }
    } else if !ip4.is_empty() && ip4 != "none" {
        bgp.ipv4_address = explicit_address("IP", ip4, 4, interfaces)?.to_string();
    }
    if ip6 == "autodetect" {
        match detect(env, 6, interfaces, probe).await {
            Ok((interface, cidr)) => {
                info!(%cidr, interface, "using autodetected IPv6 address");
                bgp.ipv6_address = cidr.to_string();
            }
            Err(e) if bgp.ipv6_address.is_empty() => return Err(e),
            Err(e) => warn!(
                error = %e,
                kept = bgp.ipv6_address,
                "autodetection of the IPv6 address failed; keeping the existing one"
            ),
        }
    } else if !ip6.is_empty() && ip6 != "none" {
        bgp.ipv6_address = explicit_address("IP6", ip6, 6, interfaces)?.to_string();
    }

    // The node's interfaces are recorded when an address was given
    // explicitly (or as "autodetect"), for the families given; otherwise
    // the list is cleared, as Calico does.
    let given = |v: &str| !v.is_empty() && v != "none";
    let versions: Vec<u8> = [(4, given(ip4)), (6, given(ip6))]
        .into_iter()
        .filter_map(|(v, g)| g.then_some(v))
        .collect();
    node.spec.interfaces = if versions.is_empty() {
        Vec::new()
    } else {
        let exclude = autodetect::default_exclusions();
        let mut recorded: Vec<NodeInterface> = interfaces
            .iter()
            .filter(|i| !exclude.is_match(&i.name))
            .map(|i| NodeInterface {
                name: i.name.clone(),
                addresses: i
                    .addresses
                    .iter()
                    .filter(|a| versions.contains(&if a.addr().is_ipv4() { 4 } else { 6 }))
                    .map(|a| a.addr().to_string())
                    .collect(),
            })
            .collect();
        recorded.sort_by(|a, b| a.name.cmp(&b.name));
        recorded
    };

    if bgp.ipv4_address.is_empty() && bgp.ipv6_address.is_empty() {
        return Err(StartupError::NoAddress {
            node: node.metadata.name.clone(),
        });
    }
    let changed = (
        bgp.ipv4_address.clone(),
        bgp.ipv6_address.clone(),
        node.spec.interfaces.clone(),
    ) != old;
    node.spec.bgp = Some(bgp);
    Ok(changed)
}

async fn detect(
    env: &Env,
    version: u8,
    interfaces: &[HostInterface],
    probe: &Probe,
) -> Result<(String, IpNet), StartupError> {
    let variable = autodetect::method_variable(version);
    let method = Method::parse(variable, env.get(variable).unwrap_or_default())?;
    // can-reach asks the kernel; the answer is fetched first so that the
    // detection itself stays pure.
    let reached = match &method {
        Method::CanReach(destination) => Some(
            probe
                .reach(destination, version == 6)
                .await
                .map_err(|e| e.to_string()),
        ),
        _ => None,
    };
    autodetect::detect(&method, version, interfaces, |_| {
        reached.unwrap_or_else(|| Err("not asked".into()))
    })
    .map_err(StartupError::from)
}

/// An address given in `IP`/`IP6`: a CIDR as given, or an address with
/// the subnet length of the interface that carries it (a host route when
/// no interface does).
fn explicit_address(
    variable: &'static str,
    value: &str,
    version: u8,
    interfaces: &[HostInterface],
) -> Result<IpNet, StartupError> {
    let bad = || StartupError::Address {
        variable,
        value: value.to_owned(),
        version,
    };
    let net = if value.contains('/') {
        value.parse::<IpNet>().map_err(|_| bad())?
    } else {
        let ip: IpAddr = value.parse().map_err(|_| bad())?;
        match autodetect::local_cidr(interfaces, ip) {
            Some((_, cidr)) => cidr,
            None => {
                warn!(%ip, "no interface of this host carries the address in {variable}");
                IpNet::from(ip)
            }
        }
    };
    if net.addr().is_ipv4() != (version == 4) {
        return Err(bad());
    }
    Ok(net)
}

/// The address of a node's BGP field, without its subnet length.
fn address_of(text: &str) -> Option<IpAddr> {
    text.parse::<IpNet>()
        .map(|n| n.addr())
        .or_else(|_| text.parse::<IpAddr>())
        .ok()
}

async fn check_conflicts<B: Backend + Clone>(
    client: &Client<B>,
    node: &Node,
) -> Result<(), StartupError> {
    let ours = node.spec.bgp.clone().unwrap_or_default();
    let nodes = client
        .list_typed::<Node>(None, None)
        .await
        .map_err(datastore("listing nodes to check for address conflicts"))?;
    for other in nodes
        .iter()
        .filter(|n| n.metadata.name != node.metadata.name)
    {
        let Some(theirs) = &other.spec.bgp else {
            continue;
        };
        for (version, mine, their) in [
            (4, &ours.ipv4_address, &theirs.ipv4_address),
            (6, &ours.ipv6_address, &theirs.ipv6_address),
        ] {
            if let (Some(a), Some(b)) = (address_of(mine), address_of(their)) {
                if a == b {
                    return Err(StartupError::AddressConflict {
                        other: other.metadata.name.clone(),
                        address: a,
                        version,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Creates each planned pool whose family has no pool yet.
async fn create_default_pools<B: Backend + Clone>(
    client: &Client<B>,
    plans: &[pools::PoolPlan],
) -> Result<Vec<String>, StartupError> {
    if plans.is_empty() {
        info!("skipping IP pool configuration");
        return Ok(Vec::new());
    }
    let existing = client
        .list_typed::<IpPool>(None, None)
        .await
        .map_err(datastore("listing IP pools"))?;
    let has_family = |v4: bool| {
        existing
            .iter()
            .any(|p| p.spec.network().is_some_and(|n| n.addr().is_ipv4() == v4))
    };
    let mut created = Vec::new();
    for plan in plans {
        if has_family(plan.version() == 4) {
            info!(
                version = plan.version(),
                "an IP pool of this family exists; not creating the default"
            );
            continue;
        }
        match client.create_typed(plan.to_resource()).await {
            Ok(_) => {
                info!(pool = plan.name, cidr = %plan.cidr, ipip = plan.ipip.as_str(),
                      vxlan = plan.vxlan.as_str(), nat_outgoing = plan.nat_outgoing,
                      "created the default IP pool");
                created.push(plan.name.to_owned());
            }
            // Another node got there first.
            Err(calico_client::Error::AlreadyExists { .. }) => {}
            Err(e) => {
                return Err(datastore(format!("creating IP pool {}", plan.name))(e));
            }
        }
    }
    Ok(created)
}

/// Creates `resource` unless it exists.
async fn create_if_missing<B: Backend + Clone, R: calico_model::Resource>(
    client: &Client<B>,
    resource: R,
    what: &str,
) -> Result<(), StartupError> {
    match client.create_typed(resource).await {
        Ok(_) => {
            info!(resource = what, "created");
            Ok(())
        }
        Err(calico_client::Error::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(datastore(format!("creating {what}"))(e)),
    }
}

/// ClusterInformation and the built-in tiers, then the default
/// configuration resources Calico's start-up writes.
async fn ensure_default_config<B: Backend + Clone>(
    client: &Client<B>,
    env: &Env,
    node_name: &str,
) -> Result<(), StartupError> {
    client
        .ensure_initialized(CALICO_VERSION, env.get("CLUSTER_TYPE").unwrap_or_default())
        .await
        .map_err(datastore("initializing ClusterInformation and tiers"))?;

    // The global agent configuration: report nothing, log at Info.
    match client.get_typed::<FelixConfiguration>("", "default").await {
        Ok(mut existing) => {
            let spec = &mut existing.spec;
            let missing = spec.reporting_interval.is_none() || spec.log_severity_screen.is_none();
            spec.reporting_interval.get_or_insert_with(|| "0s".into());
            spec.log_severity_screen
                .get_or_insert_with(|| "Info".into());
            if missing {
                match client.update_typed(existing).await {
                    Ok(_) | Err(calico_client::Error::Conflict { .. }) => {}
                    Err(e) => return Err(datastore("updating FelixConfiguration default")(e)),
                }
            }
        }
        Err(calico_client::Error::NotFound { .. }) => {
            let config = FelixConfiguration {
                metadata: ObjectMeta::named("default"),
                spec: FelixConfigurationSpec {
                    reporting_interval: Some("0s".into()),
                    log_severity_screen: Some("Info".into()),
                    ..FelixConfigurationSpec::default()
                },
            };
            create_if_missing(client, config, "FelixConfiguration default").await?;
        }
        Err(e) => return Err(datastore("reading FelixConfiguration default")(e)),
    }

    // This node's: workloads may reach the host unless the host's own
    // rules say otherwise (Calico's choice for container hosts).
    let per_node = format!("node.{node_name}");
    match client.get_typed::<FelixConfiguration>("", &per_node).await {
        Ok(mut existing) => {
            if existing.spec.default_endpoint_to_host_action.is_none() {
                existing.spec.default_endpoint_to_host_action = Some("Return".into());
                match client.update_typed(existing).await {
                    Ok(_) | Err(calico_client::Error::Conflict { .. }) => {}
                    Err(e) => {
                        return Err(
                            datastore(format!("updating FelixConfiguration {per_node}"))(e),
                        );
                    }
                }
            }
        }
        Err(calico_client::Error::NotFound { .. }) => {
            let config = FelixConfiguration {
                metadata: ObjectMeta::named(per_node.clone()),
                spec: FelixConfigurationSpec {
                    default_endpoint_to_host_action: Some("Return".into()),
                    ..FelixConfigurationSpec::default()
                },
            };
            create_if_missing(client, config, &format!("FelixConfiguration {per_node}")).await?;
        }
        Err(e) => {
            return Err(datastore(format!("reading FelixConfiguration {per_node}"))(
                e,
            ));
        }
    }

    create_if_missing(
        client,
        BgpConfiguration {
            metadata: ObjectMeta::named("default"),
            spec: BgpConfigurationSpec::default(),
        },
        "BGPConfiguration default",
    )
    .await?;
    create_if_missing(
        client,
        IpamConfiguration {
            metadata: ObjectMeta::named("default"),
            spec: IpamConfigurationSpec {
                auto_allocate_blocks: true,
                kube_virt_vm_address_persistence: Some("Enabled".into()),
                ..IpamConfigurationSpec::default()
            },
        },
        "IPAMConfiguration default",
    )
    .await
}

/// IPv6 pools are created when the agent's IPv6 support is on
/// (`FELIX_IPV6SUPPORT`, default true) and the kernel has IPv6.
fn ipv6_supported(env: &Env) -> bool {
    env.flag("FELIX_IPV6SUPPORT", true) && std::path::Path::new("/proc/sys/net/ipv6").exists()
}

/// Random bytes for a default IPv6 ULA pool.
fn random_bytes() -> [u8; 5] {
    let uuid = uuid::Uuid::new_v4();
    let mut out = [0u8; 5];
    out.copy_from_slice(&uuid.as_bytes()[..5]);
    out
}
