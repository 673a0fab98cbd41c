//! `ADD`: addresses, interface, endpoint, profile; all undone on failure.

use std::borrow::Cow;
use std::net::IpAddr;
use std::path::Path;

use calico_model::{Profile, WorkloadEndpoint};
use calico_netlink::{WorkloadInterface, WorkloadLinks, format_mac, parse_mac};
use ipnet::IpNet;

use super::{Invocation, Services, ensure_ready, system_labels};
use crate::config::NetConf;
use crate::endpoint::PodInfo;
use crate::error::{CniError, ErrorCode};
use crate::ipam::IpamRequest;
use crate::names::{self, Orchestrator, WorkloadIds};
use crate::result::{CniResult, Interface, IpConfig};

/// Pod annotations Calico honours.
const ANNOTATION_IPV4_POOLS: &str = "cni.projectcalico.org/ipv4pools";
const ANNOTATION_IPV6_POOLS: &str = "cni.projectcalico.org/ipv6pools";
const ANNOTATION_IP_FAMILIES: &str = "cni.projectcalico.org/ipFamilies";
const ANNOTATION_IP_ADDRS: &str = "cni.projectcalico.org/ipAddrs";
const ANNOTATION_IP_ADDRS_NO_IPAM: &str = "cni.projectcalico.org/ipAddrsNoIpam";
const ANNOTATION_HW_ADDR: &str = "cni.projectcalico.org/hwAddr";

/// Adds the container to the network: assigns addresses, creates and
/// configures the interface pair, records the WorkloadEndpoint (and the
/// network's profile). If any step fails, every earlier one is undone
/// before the error is returned.
pub async fn cmd_add(inv: &Invocation, svc: &Services<'_>) -> Result<CniResult, CniError> {
    let env = &inv.env;
    let netns = env.netns.as_deref().ok_or_else(|| {
        CniError::new(
            ErrorCode::InvalidEnvironment,
            "CNI_NETNS is required for ADD",
        )
    })?;
    let ids = WorkloadIds::new(&inv.node, &env.args, &env.container_id, &env.ifname);
    let name = ids
        .endpoint_name()
        .map_err(|e| CniError::from_error(ErrorCode::InvalidEnvironment, &e))?;
    ensure_ready(svc.store).await?;

    let existing = svc.store.get(&ids.namespace, &name).await.map_err(|e| {
        e.to_cni(&format!(
            "reading WorkloadEndpoint {}/{name}",
            ids.namespace
        ))
    })?;

    if ids.orchestrator == Orchestrator::Cni
        && let Some(endpoint) = existing
    {
        // The container joins another network: Calico keeps its interface
        // and addresses and adds this network's profile to it.
        return join_network(inv, svc, endpoint).await;
    }

    let pod = match ids.orchestrator {
        Orchestrator::Kubernetes => svc
            .pods
            .pod(&ids.namespace, &ids.pod)
            .await
            .map_err(|e| e.to_cni(&format!("reading pod {}/{}", ids.namespace, ids.pod)))?,
        Orchestrator::Cni => None,
    };
    let pod = pod.unwrap_or_default();
    let (stdin, conf) = pool_overrides(inv, &pod)?;
    let plan = AddressPlan::new(inv, &conf, &pod)?;

    let handle = names::handle_id(&conf.name, &env.container_id);
    let request = IpamRequest {
        env,
        conf: &conf,
        stdin: &stdin,
        handle_id: &handle,
        ids: &ids,
        requested: &plan.requested,
    };
    let assigned = match &plan.no_ipam {
        Some(addresses) => CniResult {
            ips: addresses
                .iter()
                .map(|a| IpConfig {
                    interface: None,
                    address: IpNet::from(*a),
                    gateway: None,
                })
                .collect(),
            ..Default::default()
        },
        None => svc
            .ipam
            .add(&request)
            .await
            .map_err(|e| e.to_cni("assigning addresses"))?,
    };

    let mut undo = Undo {
        svc,
        request: plan.no_ipam.is_none().then_some(&request),
        netns,
        ifname: &env.ifname,
        interface: false,
        endpoint: None,
    };
    let addresses: Vec<IpAddr> = assigned.ips.iter().map(|ip| ip.address.addr()).collect();
    if addresses.is_empty() {
        return Err(undo
            .run(CniError::new(
                ErrorCode::Internal,
                "IPAM returned no addresses",
            ))
            .await);
    }

    let spec = WorkloadInterface {
        host_ifname: names::host_ifname(&inv.interface_prefix, &env.args, &env.container_id),
        pod_ifname: env.ifname.clone(),
        addresses: addresses.clone(),
        routes: conf.pod_routes()?,
        mtu: inv.mtu,
        queues: u32::try_from(conf.num_queues).ok().filter(|q| *q > 1),
        pod_mac: plan.mac,
        allow_ip_forwarding: conf.container_settings.allow_ip_forwarding,
        // Calico's IPAM returns no routes when the node agent is to program
        // the host side itself (live-migration targets).
        host_routes: !(conf.ipam.ipam_type == "calico-ipam"
            && assigned.routes.is_empty()
            && plan.no_ipam.is_none()),
    };
    let links = match svc.dataplane.add(netns, &spec) {
        Ok(links) => links,
        Err(e) => {
            return Err(undo
                .run(
                    CniError::from_error(ErrorCode::Internal, &e)
                        .prefixed("setting up the pod's interface"),
                )
                .await);
        }
    };
    undo.interface = true;

    let endpoint = build_endpoint(&conf, &ids, &name, existing, &pod, &addresses, &links);
    if let Err(e) = svc.store.apply(&endpoint).await {
        let error = e.to_cni(&format!(
            "writing WorkloadEndpoint {}/{name}",
            ids.namespace
        ));
        return Err(undo.run(error).await);
    }
    undo.endpoint = Some((ids.namespace.clone(), name.clone()));

    if conf.policy.policy_type.is_empty()
        && let Err(e) = svc
            .store
            .ensure_profile(&network_profile(&conf, ids.orchestrator))
            .await
    {
        let error = e.to_cni(&format!("creating profile {}", conf.name));
        return Err(undo.run(error).await);
    }

    Ok(CniResult {
        interfaces: vec![
            Interface {
                name: links.host.name.clone(),
                ..Default::default()
            },
            Interface {
                name: env.ifname.clone(),
                mac: links.pod.mac.as_ref().map(format_mac),
                mtu: inv.mtu,
                sandbox: Some(netns.display().to_string()),
                ..Default::default()
            },
        ],
        ips: addresses
            .iter()
            .map(|a| IpConfig {
                interface: Some(1),
                address: IpNet::from(*a),
                gateway: None,
            })
            .collect(),
        routes: assigned.routes,
        dns: assigned.dns,
    })
}

/// Which addresses to ask for, and the pod's requested MAC.
struct AddressPlan {
    /// Explicit addresses for IPAM to record (`IP=` in `CNI_ARGS`, the
    /// `ipAddrs` annotation).
    requested: Vec<IpAddr>,
    /// Addresses to use without IPAM (`ipAddrsNoIpam`, when enabled).
    no_ipam: Option<Vec<IpAddr>>,
    mac: Option<calico_netlink::Mac>,
}

impl AddressPlan {
    fn new(inv: &Invocation, conf: &NetConf, pod: &PodInfo) -> Result<Self, CniError> {
        let annotation = |key: &str| pod.annotations.get(key).filter(|v| !v.is_empty());
        let ip_addrs = annotation(ANNOTATION_IP_ADDRS);
        let no_ipam = annotation(ANNOTATION_IP_ADDRS_NO_IPAM);
        let mut plan = AddressPlan {
            requested: inv.env.args.ip.into_iter().collect(),
            no_ipam: None,
            mac: None,
        };
        match (ip_addrs, no_ipam) {
            (Some(_), Some(_)) => {
                return Err(invalid(format!(
                    "pod annotations {ANNOTATION_IP_ADDRS} and {ANNOTATION_IP_ADDRS_NO_IPAM} cannot be used together"
                )));
            }
            (Some(list), None) => {
                if conf.ipam.ipam_type != "calico-ipam" {
                    return Err(invalid(format!(
                        "annotation {ANNOTATION_IP_ADDRS} needs ipam type \"calico-ipam\", not {:?}",
                        conf.ipam.ipam_type
                    )));
                }
                plan.requested = address_list(ANNOTATION_IP_ADDRS, list)?;
            }
            (None, Some(list)) => {
                if conf.ipam.ipam_type != "calico-ipam" {
                    return Err(invalid(format!(
                        "annotation {ANNOTATION_IP_ADDRS_NO_IPAM} needs ipam type \"calico-ipam\", not {:?}",
                        conf.ipam.ipam_type
                    )));
                }
                if !conf.feature_control.ip_addrs_no_ipam {
                    return Err(invalid(format!(
                        "annotation {ANNOTATION_IP_ADDRS_NO_IPAM} needs feature_control.ip_addrs_no_ipam to be enabled"
                    )));
                }
                plan.no_ipam = Some(address_list(ANNOTATION_IP_ADDRS_NO_IPAM, list)?);
            }
            (None, None) => {}
        }
        if let Some(mac) = annotation(ANNOTATION_HW_ADDR) {
            plan.mac = Some(parse_mac(mac).ok_or_else(|| {
                invalid(format!(
                    "annotation {ANNOTATION_HW_ADDR}: {mac:?} is not a MAC address"
                ))
            })?);
        }
        Ok(plan)
    }
}

fn invalid(msg: String) -> CniError {
    CniError::new(ErrorCode::InvalidConfig, msg)
}

/// Parses a JSON list of addresses (`["10.0.0.1", "fd00::1"]`): at most one
/// per family, as Calico allows.
fn address_list(annotation: &str, text: &str) -> Result<Vec<IpAddr>, CniError> {
    let texts: Vec<String> = serde_json::from_str(text).map_err(|e| {
        invalid(format!(
            "annotation {annotation}: {text:?} is not a JSON list of addresses ({e})"
        ))
    })?;
    let mut addresses = Vec::new();
    for t in &texts {
        let ip: IpAddr = t.parse().map_err(|_| {
            invalid(format!(
                "annotation {annotation}: {t:?} is not an IP address"
            ))
        })?;
        if addresses
            .iter()
            .any(|a: &IpAddr| a.is_ipv4() == ip.is_ipv4())
        {
            return Err(invalid(format!(
                "annotation {annotation}: more than one IPv{} address",
                if ip.is_ipv4() { 4 } else { 6 }
            )));
        }
        addresses.push(ip);
    }
    if addresses.is_empty() {
        return Err(invalid(format!("annotation {annotation} lists no address")));
    }
    Ok(addresses)
}

/// Applies the pod's (or its namespace's) pool and family annotations to
/// the IPAM section, as Calico does for `calico-ipam` under Kubernetes
/// policy: the delegated plugin sees the adjusted configuration.
fn pool_overrides<'a>(
    inv: &'a Invocation,
    pod: &PodInfo,
) -> Result<(Cow<'a, [u8]>, Cow<'a, NetConf>), CniError> {
    if inv.conf.ipam.ipam_type != "calico-ipam" || inv.conf.policy.policy_type != "k8s" {
        return Ok((Cow::Borrowed(&inv.stdin), Cow::Borrowed(&inv.conf)));
    }
    let pick = |key: &str| {
        pod.annotations
            .get(key)
            .or_else(|| pod.namespace_annotations.get(key))
            .filter(|v| !v.is_empty())
    };
    let (v4, v6, families) = (
        pick(ANNOTATION_IPV4_POOLS),
        pick(ANNOTATION_IPV6_POOLS),
        pick(ANNOTATION_IP_FAMILIES),
    );
    if v4.is_none() && v6.is_none() && families.is_none() {
        return Ok((Cow::Borrowed(&inv.stdin), Cow::Borrowed(&inv.conf)));
    }
    let mut value: serde_json::Value = serde_json::from_slice(&inv.stdin).map_err(|e| {
        CniError::new(
            ErrorCode::Decode,
            format!("decoding the network configuration: {e}"),
        )
    })?;
    let ipam = value
        .get_mut("ipam")
        .and_then(|v| v.as_object_mut())
        .ok_or_else(|| invalid("the network configuration has no ipam object".into()))?;
    for (key, field) in [(ANNOTATION_IPV4_POOLS, v4), (ANNOTATION_IPV6_POOLS, v6)] {
        if let Some(text) = field {
            let pools: Vec<String> = serde_json::from_str(text).map_err(|e| {
                invalid(format!(
                    "annotation {key}: {text:?} is not a JSON list of pools ({e})"
                ))
            })?;
            let target = if key == ANNOTATION_IPV4_POOLS {
                "ipv4_pools"
            } else {
                "ipv6_pools"
            };
            ipam.insert(target.into(), serde_json::json!(pools));
        }
    }
    if let Some(text) = families {
        let list: Vec<String> = serde_json::from_str(text).map_err(|e| {
            invalid(format!(
                "annotation {ANNOTATION_IP_FAMILIES}: {text:?} is not a JSON list ({e})"
            ))
        })?;
        let (mut v4, mut v6) = (false, false);
        for family in &list {
            match family.as_str() {
                "IPv4" => v4 = true,
                "IPv6" => v6 = true,
                other => {
                    return Err(invalid(format!(
                        "annotation {ANNOTATION_IP_FAMILIES}: unknown family {other:?} (use \"IPv4\", \"IPv6\")"
                    )));
                }
            }
        }
        ipam.insert("assign_ipv4".into(), serde_json::json!(v4.to_string()));
        ipam.insert("assign_ipv6".into(), serde_json::json!(v6.to_string()));
    }
    let bytes = serde_json::to_vec(&value).expect("serialisable");
    let conf = NetConf::parse(&bytes)?;
    conf.validate()?;
    Ok((Cow::Owned(bytes), Cow::Owned(conf)))
}

fn build_endpoint(
    conf: &NetConf,
    ids: &WorkloadIds,
    name: &str,
    existing: Option<WorkloadEndpoint>,
    pod: &PodInfo,
    addresses: &[IpAddr],
    links: &WorkloadLinks,
) -> WorkloadEndpoint {
    // A pod's endpoint is updated in place (its sandbox was recreated):
    // keep the stored identity and revision for the compare-and-swap.
    let mut endpoint = existing.unwrap_or_default();
    endpoint.metadata.name = name.to_string();
    endpoint.metadata.namespace = ids.namespace.clone();
    endpoint.metadata.labels = pod.labels.clone();
    endpoint
        .metadata
        .labels
        .extend(system_labels(&ids.namespace, ids.orchestrator.as_str()));
    endpoint.metadata.generate_name = pod.generate_name.clone();

    let spec = &mut endpoint.spec;
    spec.orchestrator = ids.orchestrator.as_str().to_string();
    spec.node = ids.node.clone();
    spec.endpoint = ids.endpoint.clone();
    spec.pod = ids.pod.clone();
    spec.container_id = ids.container_id.clone();
    spec.service_account_name = pod.service_account.clone();
    spec.ip_networks = addresses
        .iter()
        .map(|a| IpNet::from(*a).to_string())
        .collect();
    spec.profiles = if conf.policy.policy_type == "k8s" {
        if pod.profiles.is_empty() {
            vec![format!("kns.{}", ids.namespace)]
        } else {
            pod.profiles.clone()
        }
    } else {
        vec![conf.name.clone()]
    };
    spec.interface_name = links.host.name.clone();
    spec.mac = links.pod.mac.as_ref().map(format_mac).unwrap_or_default();
    endpoint
}

/// The profile Calico creates for a network when no policy plugin is
/// configured: egress allowed; ingress allowed from everything under
/// Kubernetes, from the same network otherwise.
fn network_profile(conf: &NetConf, orchestrator: Orchestrator) -> Profile {
    use calico_model::rule::{Action, EntityRule, Rule};
    let mut ingress = Rule::new(Action::Allow);
    if orchestrator == Orchestrator::Cni {
        ingress.source = EntityRule {
            selector: format!("has({})", conf.name),
            ..Default::default()
        };
    }
    let mut profile = Profile::default();
    profile.metadata.name = conf.name.clone();
    profile.spec.ingress = vec![ingress];
    profile.spec.egress = vec![Rule::new(Action::Allow)];
    profile
        .spec
        .labels_to_apply
        .insert(conf.name.clone(), String::new());
    profile
}

/// A container already has an endpoint (it was added to another network):
/// add this network's profile and report the endpoint's addresses.
async fn join_network(
    inv: &Invocation,
    svc: &Services<'_>,
    mut endpoint: WorkloadEndpoint,
) -> Result<CniResult, CniError> {
    if !endpoint.spec.profiles.contains(&inv.conf.name) {
        endpoint.spec.profiles.push(inv.conf.name.clone());
    }
    let mut ips = Vec::new();
    for text in &endpoint.spec.ip_networks {
        let address: IpNet = text.parse().map_err(|_| {
            CniError::new(
                ErrorCode::Internal,
                format!(
                    "WorkloadEndpoint {} has an invalid ipNetworks entry {text:?}",
                    endpoint.metadata.name
                ),
            )
        })?;
        ips.push(IpConfig {
            interface: Some(1),
            address,
            gateway: None,
        });
    }
    svc.store.apply(&endpoint).await.map_err(|e| {
        e.to_cni(&format!(
            "updating WorkloadEndpoint {}",
            endpoint.metadata.name
        ))
    })?;
    if inv.conf.policy.policy_type.is_empty() {
        svc.store
            .ensure_profile(&network_profile(&inv.conf, Orchestrator::Cni))
            .await
            .map_err(|e| e.to_cni(&format!("creating profile {}", inv.conf.name)))?;
    }
    Ok(CniResult {
        interfaces: vec![
            Interface {
                name: endpoint.spec.interface_name.clone(),
                ..Default::default()
            },
            Interface {
                name: inv.env.ifname.clone(),
                mac: Some(endpoint.spec.mac.clone()).filter(|m| !m.is_empty()),
                mtu: inv.mtu,
                sandbox: inv.env.netns.as_ref().map(|p| p.display().to_string()),
                ..Default::default()
            },
        ],
        ips,
        ..Default::default()
    })
}

/// What an ADD has done so far, to undo in reverse order.
struct Undo<'a> {
    svc: &'a Services<'a>,
    request: Option<&'a IpamRequest<'a>>,
    netns: &'a Path,
    ifname: &'a str,
    interface: bool,
    endpoint: Option<(String, String)>,
}

impl Undo<'_> {
    /// Undoes everything recorded and returns `error`, with any failure to
    /// undo added to its details.
    async fn run(self, mut error: CniError) -> CniError {
        let mut failures = Vec::new();
        if let Some((namespace, name)) = &self.endpoint
            && let Err(e) = self.svc.store.delete(namespace, name, None).await
        {
            failures.push(format!("deleting WorkloadEndpoint {namespace}/{name}: {e}"));
        }
        if self.interface
            && let Err(e) = self.svc.dataplane.remove(self.netns, self.ifname)
        {
            failures.push(format!("removing interface {}: {e}", self.ifname));
        }
        if let Some(request) = self.request
            && let Err(e) = self.svc.ipam.del(request).await
        {
            failures.push(format!(
                "releasing addresses of handle {}: {e}",
                request.handle_id
            ));
        }
        if !failures.is_empty() {
            tracing::error!(?failures, "rolling back a failed ADD was incomplete");
            let undo = format!("rollback incomplete: {}", failures.join("; "));
            error.details = if error.details.is_empty() {
                undo
            } else {
                format!("{}; {undo}", error.details)
            };
        }
        error
    }
}
