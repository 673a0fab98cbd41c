//! From `projectcalico.org/v3` resources to the engine's working form: what
//! Calico's syncer update processors (and clientv3's defaulting) do before
//! Felix sees a resource.
//!
//! - Workload endpoints get `projectcalico.org/namespace`,
//!   `projectcalico.org/orchestrator` and (from `serviceAccountName`)
//!   `projectcalico.org/serviceaccount` labels; any `pcns.`/`pcsa.` labels
//!   they carry are dropped so an endpoint cannot claim another namespace's
//!   labels. Those prefixes are how namespace and service-account labels
//!   reach endpoints, through the `kns.<ns>` / `ksa.<ns>.<sa>` profiles.
//! - A NetworkPolicy's selector is limited to its namespace; a rule's
//!   selectors too, unless it names a `namespaceSelector`.
//! - Namespace and service-account selectors are rewritten onto the
//!   `pcns.`/`pcsa.` labels; `all()` in them means "any namespaced
//!   endpoint", `global()` "no namespace".
//!
//! The selector text is composed exactly as Calico composes it, so selector
//! unique ids (and therefore IP set ids) are Calico's.

use std::collections::BTreeMap;
use std::net::IpAddr;

use calico_model::{
    Action, EntityRule, GlobalNetworkPolicy, GlobalNetworkSet, HostEndpoint, NetworkPolicy,
    NetworkSet, PolicyType, Port, Profile, Protocol, Rule, ServiceAccountMatch, Tier,
    WorkloadEndpoint,
};
use calico_selector::{ParseError, Selector};
use ipnet::IpNet;

use crate::ids::{EndpointKey, NetworkSetKey, PolicyKey, PolicyKind};
use crate::program::{IcmpMatch, NamedPortProtocol, PortRange, RuleAction, TierAction};

pub(crate) const LABEL_NAMESPACE: &str = "projectcalico.org/namespace";
pub(crate) const LABEL_ORCHESTRATOR: &str = "projectcalico.org/orchestrator";
pub(crate) const LABEL_SERVICE_ACCOUNT: &str = "projectcalico.org/serviceaccount";
pub(crate) const NAMESPACE_LABEL_PREFIX: &str = "pcns.";
pub(crate) const SERVICE_ACCOUNT_LABEL_PREFIX: &str = "pcsa.";
pub(crate) const NAMESPACE_PROFILE_PREFIX: &str = "kns.";

/// A resource the engine cannot use, and which field is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidResource {
    #[error("{field}: invalid selector {selector:?}")]
    Selector {
        field: String,
        selector: String,
        #[source]
        source: ParseError,
    },
    #[error("{field}: {value:?} is not a CIDR or IP address")]
    Net { field: String, value: String },
    #[error(
        "{field}: unknown protocol {value:?} (use TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or 0-255)"
    )]
    Protocol { field: String, value: String },
    #[error("{field}: {value} is out of range 0-255")]
    Icmp { field: String, value: i64 },
    #[error("{field}: ipVersion must be 4 or 6, not {value}")]
    IpVersion { field: String, value: u8 },
    #[error("{field}: a tier's default action must be Deny or Pass, not {value}")]
    TierAction { field: String, value: String },
    #[error("{field}: {what} is not supported yet")]
    Unsupported { field: String, what: &'static str },
}

fn parse_selector(field: &str, text: &str) -> Result<Selector, InvalidResource> {
    Selector::parse(text).map_err(|source| InvalidResource::Selector {
        field: field.to_string(),
        selector: text.to_string(),
        source,
    })
}

/// The selector with `prefix` on every label key, in canonical form.
fn with_prefix(field: &str, text: &str, prefix: &str) -> Result<String, InvalidResource> {
    Ok(parse_selector(field, text)?
        .with_label_prefix(prefix)
        .canonical())
}

/// Calico's `prefixAndAppendSelector`.
fn prefix_and_append(
    current: String,
    new: &str,
    prefix: &str,
    field: &str,
) -> Result<String, InvalidResource> {
    if new.is_empty() {
        return Ok(current);
    }
    let prefixed = with_prefix(field, new, prefix)?;
    Ok(if current.is_empty() {
        prefixed
    } else {
        format!("({current}) && {prefixed}")
    })
}

fn parse_net(field: &str, s: &str) -> Result<IpNet, InvalidResource> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| InvalidResource::Net {
            field: field.to_string(),
            value: s.to_string(),
        })
}

fn parse_nets(field: &str, nets: &[String]) -> Result<Vec<IpNet>, InvalidResource> {
    nets.iter()
        .enumerate()
        .map(|(i, n)| parse_net(&format!("{field}[{i}]"), n))
        .collect()
}

pub(crate) fn protocol_number(field: &str, p: &Protocol) -> Result<u8, InvalidResource> {
    p.number().ok_or_else(|| InvalidResource::Protocol {
        field: field.to_string(),
        value: p.to_string(),
    })
}

// ----- endpoints and network sets -----

/// A named port on an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamedPort {
    pub name: String,
    pub protocol: u8,
    pub port: u16,
}

/// An endpoint as policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EndpointDef {
    pub key: EndpointKey,
    pub node: String,
    pub interface_name: String,
    pub labels: BTreeMap<String, String>,
    pub profiles: Vec<String>,
    pub nets: Vec<IpNet>,
    pub named_ports: Vec<NamedPort>,
}

/// `Ok(None)` for a workload with no addresses yet, which Calico leaves out
/// until it has some.
pub(crate) fn workload_endpoint(
    w: &WorkloadEndpoint,
) -> Result<Option<EndpointDef>, InvalidResource> {
    if w.spec.ip_networks.is_empty() {
        return Ok(None);
    }
    let mut labels: BTreeMap<String, String> = w
        .metadata
        .labels
        .iter()
        .filter(|(k, _)| {
            !k.starts_with(NAMESPACE_LABEL_PREFIX) && !k.starts_with(SERVICE_ACCOUNT_LABEL_PREFIX)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(LABEL_NAMESPACE.into(), w.metadata.namespace.clone());
    labels.insert(LABEL_ORCHESTRATOR.into(), w.spec.orchestrator.clone());
    if !w.spec.service_account_name.is_empty() {
        labels.insert(
            LABEL_SERVICE_ACCOUNT.into(),
            w.spec.service_account_name.clone(),
        );
    }
    let mut named_ports = Vec::new();
    for (i, p) in w.spec.ports.iter().enumerate() {
        if !p.name.is_empty() {
            named_ports.push(NamedPort {
                name: p.name.clone(),
                protocol: protocol_number(&format!("spec.ports[{i}].protocol"), &p.protocol)?,
                port: p.port,
            });
        }
    }
    Ok(Some(EndpointDef {
        key: EndpointKey::workload(&w.metadata.namespace, &w.metadata.name),
        node: w.spec.node.clone(),
        interface_name: w.spec.interface_name.clone(),
        labels,
        profiles: w.spec.profiles.clone(),
        nets: parse_nets("spec.ipNetworks", &w.spec.ip_networks)?,
        named_ports,
    }))
}

pub(crate) fn host_endpoint(h: &HostEndpoint) -> Result<EndpointDef, InvalidResource> {
    let mut nets = Vec::new();
    for (i, ip) in h.spec.expected_ips.iter().enumerate() {
        let addr: IpAddr = ip.parse().map_err(|_| InvalidResource::Net {
            field: format!("spec.expectedIPs[{i}]"),
            value: ip.clone(),
        })?;
        nets.push(IpNet::from(addr));
    }
    let mut named_ports = Vec::new();
    for (i, p) in h.spec.ports.iter().enumerate() {
        named_ports.push(NamedPort {
            name: p.name.clone(),
            protocol: protocol_number(&format!("spec.ports[{i}].protocol"), &p.protocol)?,
            port: p.port,
        });
    }
    Ok(EndpointDef {
        key: EndpointKey::host(&h.metadata.name),
        node: h.spec.node.clone(),
        interface_name: h.spec.interface_name.clone(),
        labels: h.metadata.labels.clone(),
        profiles: h.spec.profiles.clone(),
        nets,
        named_ports,
    })
}

/// A network set as policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NetworkSetDef {
    pub key: NetworkSetKey,
    pub labels: BTreeMap<String, String>,
    pub parents: Vec<String>,
    pub nets: Vec<IpNet>,
}

/// A namespaced network set also carries its namespace label and inherits
/// the namespace's labels, as Calico arranges.
pub(crate) fn network_set(n: &NetworkSet) -> Result<NetworkSetDef, InvalidResource> {
    let mut labels = n.metadata.labels.clone();
    labels.insert(LABEL_NAMESPACE.into(), n.metadata.namespace.clone());
    Ok(NetworkSetDef {
        key: NetworkSetKey::Namespaced {
            namespace: n.metadata.namespace.clone(),
            name: n.metadata.name.clone(),
        },
        labels,
        parents: vec![format!(
            "{NAMESPACE_PROFILE_PREFIX}{}",
            n.metadata.namespace
        )],
        nets: parse_nets("spec.nets", &n.spec.nets)?,
    })
}

pub(crate) fn global_network_set(n: &GlobalNetworkSet) -> Result<NetworkSetDef, InvalidResource> {
    Ok(NetworkSetDef {
        key: NetworkSetKey::Global {
            name: n.metadata.name.clone(),
        },
        labels: n.metadata.labels.clone(),
        parents: Vec::new(),
        nets: parse_nets("spec.nets", &n.spec.nets)?,
    })
}

// ----- tiers -----

/// A tier's ordering and default action.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TierDef {
    pub order: Option<f64>,
    pub default_action: TierAction,
}

pub(crate) fn tier(t: &Tier) -> Result<TierDef, InvalidResource> {
    let default_action = match t.spec.default_action {
        None | Some(Action::Deny) => TierAction::Deny,
        Some(Action::Pass) => TierAction::Pass,
        Some(other) => {
            return Err(InvalidResource::TierAction {
                field: "spec.defaultAction".into(),
                value: other.as_str().into(),
            });
        }
    };
    Ok(TierDef {
        order: t.spec.order,
        default_action,
    })
}

/// The tiers that always exist, with Calico's orders and default actions.
pub(crate) fn built_in_tiers() -> [(&'static str, TierDef); 3] {
    use calico_model::policy::{
        DEFAULT_TIER_NAME, DEFAULT_TIER_ORDER, KUBE_ADMIN_TIER_NAME, KUBE_ADMIN_TIER_ORDER,
        KUBE_BASELINE_TIER_NAME, KUBE_BASELINE_TIER_ORDER,
    };
    [
        (
            KUBE_ADMIN_TIER_NAME,
            TierDef {
                order: Some(KUBE_ADMIN_TIER_ORDER),
                default_action: TierAction::Pass,
            },
        ),
        (
            DEFAULT_TIER_NAME,
            TierDef {
                order: Some(DEFAULT_TIER_ORDER),
                default_action: TierAction::Deny,
            },
        ),
        (
            KUBE_BASELINE_TIER_NAME,
            TierDef {
                order: Some(KUBE_BASELINE_TIER_ORDER),
                default_action: TierAction::Pass,
            },
        ),
    ]
}

// ----- policies and profiles -----

/// A policy as Felix sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PolicyDef {
    pub key: PolicyKey,
    /// Calico's tie-break text for equal orders, computed once.
    pub tie_break: String,
    pub tier: String,
    /// `+inf` when the policy gives none.
    pub order: f64,
    pub selector: Selector,
    pub ingress: bool,
    pub egress: bool,
    pub do_not_track: bool,
    pub pre_dnat: bool,
    pub apply_on_forward: bool,
    pub inbound: Vec<RuleDef>,
    pub outbound: Vec<RuleDef>,
}

impl PolicyDef {
    /// Whether a change from `other` can change which endpoints use the
    /// policy or where it sits among their policies.
    pub fn same_placement(&self, other: &PolicyDef) -> bool {
        self.tier == other.tier
            && self.order.to_bits() == other.order.to_bits()
            && self.ingress == other.ingress
            && self.egress == other.egress
            && self.do_not_track == other.do_not_track
            && self.pre_dnat == other.pre_dnat
            && self.apply_on_forward == other.apply_on_forward
    }
}

/// A profile's labels (inherited by endpoints naming it) and rules.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProfileDef {
    pub labels: BTreeMap<String, String>,
    pub inbound: Vec<RuleDef>,
    pub outbound: Vec<RuleDef>,
}

/// A rule with its selectors composed and parsed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RuleDef {
    pub action: RuleAction,
    pub ip_version: Option<u8>,
    pub protocol: Option<u8>,
    pub named_port_protocol: NamedPortProtocol,
    pub not_protocol: Option<u8>,
    pub icmp: Option<IcmpMatch>,
    pub not_icmp: Option<IcmpMatch>,
    pub src: SideDef,
    pub dst: SideDef,
}

/// One side of a rule. `selector` already includes the negated selector
/// when both are present (Calico's `combineMatchesIfPossible`).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct SideDef {
    pub nets: Vec<IpNet>,
    pub not_nets: Vec<IpNet>,
    pub selector: Option<Selector>,
    pub not_selector: Option<Selector>,
    pub ports: Vec<PortRange>,
    pub named_ports: Vec<String>,
    pub not_ports: Vec<PortRange>,
    pub not_named_ports: Vec<String>,
}

/// The API's defaulting of `types`: Ingress, unless there are only egress
/// rules (Egress) or both kinds (both).
fn types(types: &[PolicyType], ingress_rules: &[Rule], egress_rules: &[Rule]) -> (bool, bool) {
    if types.is_empty() {
        return match (ingress_rules.is_empty(), egress_rules.is_empty()) {
            (true, false) => (false, true),
            (false, false) => (true, true),
            _ => (true, false),
        };
    }
    (
        types.contains(&PolicyType::Ingress),
        types.contains(&PolicyType::Egress),
    )
}

fn tier_or_default(tier: &str) -> String {
    if tier.is_empty() {
        calico_model::policy::DEFAULT_TIER_NAME.to_string()
    } else {
        tier.to_string()
    }
}

pub(crate) fn network_policy(
    p: &NetworkPolicy,
    kind: PolicyKind,
) -> Result<PolicyDef, InvalidResource> {
    let ns = &p.metadata.namespace;
    let spec = &p.spec;
    let ns_selector = format!("{LABEL_NAMESPACE} == '{ns}'");
    let mut selector = if spec.selector.is_empty() {
        ns_selector
    } else {
        format!("({}) && {ns_selector}", spec.selector)
    };
    selector = prefix_and_append(
        selector,
        &spec.service_account_selector,
        SERVICE_ACCOUNT_LABEL_PREFIX,
        "spec.serviceAccountSelector",
    )?;
    let (ingress, egress) = types(&spec.types, &spec.ingress, &spec.egress);
    let key = PolicyKey {
        kind,
        namespace: ns.clone(),
        name: p.metadata.name.clone(),
    };
    Ok(PolicyDef {
        tie_break: key.tie_break(),
        key,
        tier: tier_or_default(&spec.tier),
        order: spec.order.unwrap_or(f64::INFINITY),
        selector: parse_selector("spec.selector", &selector)?,
        ingress,
        egress,
        do_not_track: false,
        pre_dnat: false,
        apply_on_forward: false,
        inbound: rules("spec.ingress", &spec.ingress, ns)?,
        outbound: rules("spec.egress", &spec.egress, ns)?,
    })
}

pub(crate) fn global_network_policy(p: &GlobalNetworkPolicy) -> Result<PolicyDef, InvalidResource> {
    let spec = &p.spec;
    let mut selector = spec.selector.clone();
    if !spec.namespace_selector.is_empty() {
        selector = prefix_and_append(
            selector,
            &spec.namespace_selector,
            NAMESPACE_LABEL_PREFIX,
            "spec.namespaceSelector",
        )?;
        selector = selector.replace("all()", &format!("has({LABEL_NAMESPACE})"));
    }
    if !spec.service_account_selector.is_empty() {
        selector = prefix_and_append(
            selector,
            &spec.service_account_selector,
            SERVICE_ACCOUNT_LABEL_PREFIX,
            "spec.serviceAccountSelector",
        )?;
        selector = selector.replace("all()", &format!("has({LABEL_SERVICE_ACCOUNT})"));
    }
    let (ingress, egress) = types(&spec.types, &spec.ingress, &spec.egress);
    let key = PolicyKey::global(&p.metadata.name);
    Ok(PolicyDef {
        tie_break: key.tie_break(),
        key,
        tier: tier_or_default(&spec.tier),
        order: spec.order.unwrap_or(f64::INFINITY),
        selector: parse_selector("spec.selector", &selector)?,
        ingress,
        egress,
        do_not_track: spec.do_not_track,
        pre_dnat: spec.pre_dnat,
        apply_on_forward: spec.apply_on_forward,
        inbound: rules("spec.ingress", &spec.ingress, "")?,
        outbound: rules("spec.egress", &spec.egress, "")?,
    })
}

pub(crate) fn profile(p: &Profile) -> Result<ProfileDef, InvalidResource> {
    Ok(ProfileDef {
        labels: p.spec.labels_to_apply.clone(),
        inbound: rules("spec.ingress", &p.spec.ingress, "")?,
        outbound: rules("spec.egress", &p.spec.egress, "")?,
    })
}

fn rules(field: &str, rules: &[Rule], ns: &str) -> Result<Vec<RuleDef>, InvalidResource> {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| rule(&format!("{field}[{i}]"), r, ns))
        .collect()
}

fn icmp(
    field: &str,
    f: &Option<calico_model::IcmpFields>,
) -> Result<Option<IcmpMatch>, InvalidResource> {
    let Some(f) = f else { return Ok(None) };
    let byte = |what: &str, v: i64| {
        u8::try_from(v).map_err(|_| InvalidResource::Icmp {
            field: format!("{field}.{what}"),
            value: v,
        })
    };
    // Calico matches ICMP only when a type is given.
    let Some(t) = f.icmp_type else {
        return Ok(None);
    };
    Ok(Some(IcmpMatch {
        icmp_type: byte("type", t)?,
        code: f.code.map(|c| byte("code", c)).transpose()?,
    }))
}

fn rule(field: &str, r: &Rule, ns: &str) -> Result<RuleDef, InvalidResource> {
    let action = match r.action {
        Action::Allow => RuleAction::Allow,
        Action::Deny => RuleAction::Deny,
        Action::Log => RuleAction::Log,
        Action::Pass => RuleAction::Pass,
    };
    if let Some(v) = r.ip_version {
        if v != 4 && v != 6 {
            return Err(InvalidResource::IpVersion {
                field: format!("{field}.ipVersion"),
                value: v,
            });
        }
    }
    let protocol = r
        .protocol
        .as_ref()
        .map(|p| protocol_number(&format!("{field}.protocol"), p))
        .transpose()?;
    let named_port_protocol = match protocol {
        None => NamedPortProtocol::Any,
        Some(17) => NamedPortProtocol::Udp,
        Some(132) => NamedPortProtocol::Sctp,
        Some(_) => NamedPortProtocol::Tcp,
    };
    Ok(RuleDef {
        action,
        ip_version: r.ip_version,
        protocol,
        named_port_protocol,
        not_protocol: r
            .not_protocol
            .as_ref()
            .map(|p| protocol_number(&format!("{field}.notProtocol"), p))
            .transpose()?,
        icmp: icmp(&format!("{field}.icmp"), &r.icmp)?,
        not_icmp: icmp(&format!("{field}.notICMP"), &r.not_icmp)?,
        src: side(&format!("{field}.source"), &r.source, ns)?,
        dst: side(&format!("{field}.destination"), &r.destination, ns)?,
    })
}

fn split_ports(ports: &[Port]) -> (Vec<PortRange>, Vec<String>) {
    let mut numeric = Vec::new();
    let mut named = Vec::new();
    for p in ports {
        match p {
            Port::Range { min, max } => numeric.push(PortRange {
                min: *min,
                max: *max,
            }),
            Port::Named(n) => named.push(n.clone()),
        }
    }
    (numeric, named)
}

fn side(field: &str, er: &EntityRule, ns: &str) -> Result<SideDef, InvalidResource> {
    // Matching a Kubernetes Service needs its endpoint slices, which the
    // engine is not given; refusing is safer than ignoring the criterion.
    if er.services.is_some() {
        return Err(InvalidResource::Unsupported {
            field: format!("{field}.services"),
            what: "matching Kubernetes Services",
        });
    }
    let positive = entity_rule_selector(field, er, ns)?;
    // With a positive selector the rule only matches known endpoints, so
    // the negated selector can narrow it instead of needing its own set.
    let (positive, negative) = match (positive.is_empty(), er.not_selector.is_empty()) {
        (false, false) => (
            format!("({positive}) && (!({}))", er.not_selector),
            String::new(),
        ),
        _ => (positive, er.not_selector.clone()),
    };
    let (ports, named_ports) = split_ports(&er.ports);
    let (not_ports, not_named_ports) = split_ports(&er.not_ports);
    Ok(SideDef {
        nets: parse_nets(&format!("{field}.nets"), &er.nets)?,
        not_nets: parse_nets(&format!("{field}.notNets"), &er.not_nets)?,
        selector: (!positive.is_empty())
            .then(|| parse_selector(&format!("{field}.selector"), &positive))
            .transpose()?,
        not_selector: (!negative.is_empty())
            .then(|| parse_selector(&format!("{field}.notSelector"), &negative))
            .transpose()?,
        ports,
        named_ports,
        not_ports,
        not_named_ports,
    })
}

/// Calico's `GetEntityRuleSelector`: one selector for every endpoint the
/// entity rule's selector, namespaceSelector and serviceAccounts admit,
/// scoped to the policy's namespace (`ns`, empty for global rules) as soon
/// as any selector field is used.
pub(crate) fn entity_rule_selector(
    field: &str,
    er: &EntityRule,
    ns: &str,
) -> Result<String, InvalidResource> {
    let sa_selector = match &er.service_accounts {
        Some(sam) => service_accounts_selector(&format!("{field}.serviceAccounts"), sam)?,
        None => String::new(),
    };

    let ns_selector = if !er.namespace_selector.is_empty() {
        with_prefix(
            &format!("{field}.namespaceSelector"),
            &er.namespace_selector,
            NAMESPACE_LABEL_PREFIX,
        )?
        .replace("all()", &format!("has({LABEL_NAMESPACE})"))
        .replace("global()", &format!("!has({LABEL_NAMESPACE})"))
    } else if !ns.is_empty() {
        format!("{LABEL_NAMESPACE} == '{ns}'")
    } else {
        String::new()
    };

    let parts: Vec<&str> = [sa_selector.as_str(), er.selector.as_str()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    let mut selector = match parts.as_slice() {
        [] => String::new(),
        [one] => (*one).to_string(),
        many => format!("({})", many.join(") && (")),
    };

    if !ns_selector.is_empty()
        && (!selector.is_empty()
            || !er.not_selector.is_empty()
            || !er.namespace_selector.is_empty())
    {
        selector = if selector.is_empty() {
            ns_selector
        } else {
            format!("({ns_selector}) && ({selector})")
        };
    }
    Ok(selector)
}

/// Calico's `parseServiceAccounts`: the names as a selector on
/// `projectcalico.org/serviceaccount`, ANDed with the selector moved onto
/// the `pcsa.` labels.
fn service_accounts_selector(
    field: &str,
    sam: &ServiceAccountMatch,
) -> Result<String, InvalidResource> {
    let prefixed = if sam.selector.is_empty() {
        String::new()
    } else {
        with_prefix(
            &format!("{field}.selector"),
            &sam.selector,
            SERVICE_ACCOUNT_LABEL_PREFIX,
        )?
    };
    if sam.names.is_empty() {
        return Ok(prefixed);
    }
    let names = format!(
        "{LABEL_SERVICE_ACCOUNT} in {{ '{}' }}",
        sam.names.join("', '")
    );
    let names = parse_selector(&format!("{field}.names"), &names)?.canonical();
    Ok(if prefixed.is_empty() {
        names
    } else {
        format!("({prefixed}) && ({names})")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn er(f: impl FnOnce(&mut EntityRule)) -> EntityRule {
        let mut e = EntityRule::default();
        f(&mut e);
        e
    }

    #[test]
    fn entity_rule_selector_scoping_table() {
        // (entity rule, policy namespace, Calico's composed selector)
        let cases: Vec<(EntityRule, &str, &str)> = vec![
            (er(|_| {}), "ns1", ""),
            (er(|e| e.nets = vec!["10.0.0.0/8".into()]), "ns1", ""),
            (
                er(|e| e.selector = "app == 'a'".into()),
                "ns1",
                "(projectcalico.org/namespace == 'ns1') && (app == 'a')",
            ),
            (er(|e| e.selector = "app == 'a'".into()), "", "app == 'a'"),
            (
                er(|e| e.not_selector = "app == 'a'".into()),
                "ns1",
                "projectcalico.org/namespace == 'ns1'",
            ),
            (er(|e| e.not_selector = "app == 'a'".into()), "", ""),
            (
                er(|e| e.namespace_selector = "team == 'x'".into()),
                "ns1",
                "pcns.team == \"x\"",
            ),
            (
                er(|e| e.namespace_selector = "all()".into()),
                "",
                "has(projectcalico.org/namespace)",
            ),
            (
                er(|e| e.namespace_selector = "global()".into()),
                "ns1",
                "!has(projectcalico.org/namespace)",
            ),
            (
                er(|e| {
                    e.namespace_selector = "team == 'x'".into();
                    e.selector = "app == 'a'".into();
                }),
                "ns1",
                "(pcns.team == \"x\") && (app == 'a')",
            ),
            (
                er(|e| {
                    e.service_accounts = Some(ServiceAccountMatch {
                        names: vec!["sa1".into(), "sa2".into()],
                        selector: "role == 'db'".into(),
                    })
                }),
                "",
                "(pcsa.role == \"db\") && (projectcalico.org/serviceaccount in {\"sa1\", \"sa2\"})",
            ),
            (
                er(|e| {
                    e.service_accounts = Some(ServiceAccountMatch {
                        names: vec!["sa1".into()],
                        selector: String::new(),
                    });
                    e.selector = "app == 'a'".into();
                }),
                "ns1",
                "(projectcalico.org/namespace == 'ns1') && ((projectcalico.org/serviceaccount in {\"sa1\"}) && (app == 'a'))",
            ),
        ];
        for (e, ns, expect) in cases {
            assert_eq!(
                entity_rule_selector("f", &e, ns).unwrap(),
                expect,
                "{e:?} in {ns:?}"
            );
        }
    }

    #[test]
    fn policy_selectors_are_scoped() {
        let mut np = NetworkPolicy::default();
        np.metadata.namespace = "prod".into();
        np.metadata.name = "p".into();
        np.spec.selector = "app == 'web'".into();
        np.spec.service_account_selector = "role == 'x'".into();
        let def = network_policy(&np, PolicyKind::NetworkPolicy).unwrap();
        assert_eq!(
            def.selector,
            Selector::parse(
                "((app == 'web') && projectcalico.org/namespace == 'prod') && pcsa.role == 'x'"
            )
            .unwrap()
        );

        let mut gnp = GlobalNetworkPolicy::default();
        gnp.metadata.name = "g".into();
        gnp.spec.selector = "all()".into();
        gnp.spec.namespace_selector = "team == 'a'".into();
        let def = global_network_policy(&gnp).unwrap();
        assert_eq!(
            def.selector,
            Selector::parse("(has(projectcalico.org/namespace)) && pcns.team == 'a'").unwrap()
        );
    }

    #[test]
    fn service_matches_are_refused_with_the_field() {
        let mut p = NetworkPolicy::default();
        p.metadata.namespace = "ns".into();
        let mut r = Rule::new(Action::Allow);
        r.destination.services = Some(calico_model::ServiceMatch {
            name: "kubernetes".into(),
            namespace: "default".into(),
        });
        p.spec.egress = vec![Rule::new(Action::Log), r];
        let err = network_policy(&p, PolicyKind::NetworkPolicy).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.egress[1].destination.services: matching Kubernetes Services is not supported yet"
        );
    }

    #[test]
    fn types_default_from_rules() {
        let allow = || vec![Rule::new(Action::Allow)];
        assert_eq!(types(&[], &[], &[]), (true, false));
        assert_eq!(types(&[], &allow(), &[]), (true, false));
        assert_eq!(types(&[], &[], &allow()), (false, true));
        assert_eq!(types(&[], &allow(), &allow()), (true, true));
        assert_eq!(types(&[PolicyType::Egress], &allow(), &[]), (false, true));
    }

    #[test]
    fn workload_labels_are_forced() {
        let mut w = WorkloadEndpoint::default();
        w.metadata.namespace = "ns1".into();
        w.metadata.name = "n-k8s-pod-eth0".into();
        w.metadata.labels.insert("app".into(), "web".into());
        w.metadata
            .labels
            .insert("pcns.team".into(), "spoofed".into());
        w.metadata
            .labels
            .insert(LABEL_NAMESPACE.into(), "other".into());
        w.spec.orchestrator = "k8s".into();
        w.spec.service_account_name = "sa".into();
        w.spec.ip_networks = vec!["10.0.0.1/32".into()];
        let def = workload_endpoint(&w).unwrap().unwrap();
        assert_eq!(
            def.labels.get(LABEL_NAMESPACE).map(String::as_str),
            Some("ns1")
        );
        assert_eq!(
            def.labels.get(LABEL_ORCHESTRATOR).map(String::as_str),
            Some("k8s")
        );
        assert_eq!(
            def.labels.get(LABEL_SERVICE_ACCOUNT).map(String::as_str),
            Some("sa")
        );
        assert!(!def.labels.contains_key("pcns.team"));
        w.spec.ip_networks.clear();
        assert_eq!(workload_endpoint(&w).unwrap(), None);
    }
}
