//! Which IP pools a request may draw from: Calico's pool selection.
//!
//! A request names an IP family, a use (Workload, Tunnel, LoadBalancer),
//! the node's labels, optionally the pod namespace's labels, and
//! optionally an explicit list of pools (from the CNI configuration's
//! `ipv4_pools`/`ipv6_pools` or the pod annotation
//! `cni.projectcalico.org/ipv4pools`). The answer is the pools to try, in
//! name order, or an error saying why there are none.

use std::collections::BTreeMap;
use std::net::IpAddr;

use calico_model::ippool::AssignmentMode;
use calico_model::{IpPool, IpPoolAllowedUse, IpPoolSpec};
use calico_selector::Selector;
use ipnet::IpNet;

use crate::cidr::{IpVersion, covers};

/// Calico's default block prefix length for IPv4 pools.
pub const DEFAULT_BLOCK_SIZE_V4: u8 = 26;
/// Calico's default block prefix length for IPv6 pools.
pub const DEFAULT_BLOCK_SIZE_V6: u8 = 122;

/// The pod annotation listing the IPv4 pools (names or CIDRs, as a JSON
/// list) a pod's addresses must come from.
pub const IPV4_POOLS_ANNOTATION: &str = "cni.projectcalico.org/ipv4pools";
/// The same for IPv6.
pub const IPV6_POOLS_ANNOTATION: &str = "cni.projectcalico.org/ipv6pools";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("IP pool {pool} has an invalid CIDR {cidr:?}")]
    InvalidCidr { pool: String, cidr: String },

    #[error(
        "IP pool {pool} has an invalid blockSize {block_size} for a /{prefix_len} IPv{version} pool"
    )]
    InvalidBlockSize {
        pool: String,
        block_size: i64,
        prefix_len: u8,
        version: u8,
    },

    #[error("IP pool {pool} has an invalid {field} {selector:?}: {reason}")]
    InvalidSelector {
        pool: String,
        field: &'static str,
        selector: String,
        reason: String,
    },

    /// Calico's `ErrNoQualifiedPool`.
    #[error("cannot find a qualified ippool")]
    NoQualifiedPool,

    #[error("cannot find a qualified ippool, no pools match the required use ({0:?})")]
    NoPoolForUse(IpPoolAllowedUse),

    #[error("the given pool ({0}) does not exist, or is not enabled")]
    RequestedPoolUnavailable(IpNet),

    #[error("no configured Calico pools for node {0}")]
    NoPoolsForNode(String),

    #[error("provided IPv{expected} IPPools list contains one or more IPv{other} IPPools")]
    WrongFamily { expected: u8, other: u8 },

    #[error("error parsing pool {0:?}: not a CIDR or the name of an IP pool")]
    UnknownPoolReference(String),

    #[error("invalid pool annotation {annotation}: {reason}")]
    BadAnnotation { annotation: String, reason: String },
}

/// An IP pool with its CIDR and block size parsed and defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    pub cidr: IpNet,
    /// Prefix length of this pool's blocks.
    pub block_len: u8,
    pub spec: IpPoolSpec,
}

impl Pool {
    /// Parses a pool resource, applying Calico's defaults (block size 26 or
    /// 122). Refuses block sizes that do not fit the pool or that would
    /// make blocks larger than 2^16 addresses.
    pub fn from_resource(pool: &IpPool) -> Result<Pool, PoolError> {
        let name = pool.metadata.name.clone();
        let invalid_cidr = || PoolError::InvalidCidr {
            pool: name.clone(),
            cidr: pool.spec.cidr.clone(),
        };
        let (_, cidr) = calico_model::net::parse_cidr(&pool.spec.cidr).ok_or_else(invalid_cidr)?;
        let version = IpVersion::of_net(&cidr);
        let block_len = match pool.spec.block_size {
            0 => match version {
                IpVersion::V4 => DEFAULT_BLOCK_SIZE_V4,
                IpVersion::V6 => DEFAULT_BLOCK_SIZE_V6,
            },
            n => u8::try_from(n).unwrap_or(u8::MAX),
        };
        let max_host_bits = 16;
        if block_len < cidr.prefix_len()
            || block_len > version.bits()
            || version.bits() - block_len > max_host_bits
        {
            return Err(PoolError::InvalidBlockSize {
                pool: name,
                block_size: pool.spec.block_size,
                prefix_len: cidr.prefix_len(),
                version: version.number(),
            });
        }
        Ok(Pool {
            name,
            cidr,
            block_len,
            spec: pool.spec.clone(),
        })
    }

    pub fn version(&self) -> IpVersion {
        IpVersion::of_net(&self.cidr)
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        self.cidr.contains(&addr)
    }

    /// Whether the pool may be used for `using` (unset means Workload and
    /// Tunnel, as Calico defaults it).
    pub fn allows(&self, using: IpPoolAllowedUse) -> bool {
        self.spec.allows(using)
    }

    /// Whether automatic assignment may pick this pool without being asked
    /// for it by name.
    pub fn is_automatic(&self) -> bool {
        !matches!(self.spec.assignment_mode, Some(AssignmentMode::Manual))
    }

    /// Whether the pool's `nodeSelector` selects a node with these labels
    /// (an empty selector selects every node).
    pub fn selects_node(&self, labels: &BTreeMap<String, String>) -> Result<bool, PoolError> {
        self.evaluate("nodeSelector", &self.spec.node_selector, labels)
    }

    /// Whether the pool's `namespaceSelector` selects a namespace with these
    /// labels. Without a namespace, the selector is evaluated against no
    /// labels (as Calico does), so `all()` still matches.
    pub fn selects_namespace(
        &self,
        labels: Option<&BTreeMap<String, String>>,
    ) -> Result<bool, PoolError> {
        let empty = BTreeMap::new();
        self.evaluate(
            "namespaceSelector",
            &self.spec.namespace_selector,
            labels.unwrap_or(&empty),
        )
    }

    fn evaluate(
        &self,
        field: &'static str,
        selector: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<bool, PoolError> {
        if selector.trim().is_empty() {
            return Ok(true);
        }
        let sel = Selector::parse(selector).map_err(|e| PoolError::InvalidSelector {
            pool: self.name.clone(),
            field,
            selector: selector.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(sel.evaluate(labels))
    }
}

/// Parses every pool resource, sorted by name as Calico lists them. Pools
/// that do not parse are returned apart so the caller can report them
/// without losing the good ones.
pub fn parse_pools(resources: &[IpPool]) -> (Vec<Pool>, Vec<PoolError>) {
    let mut pools = Vec::new();
    let mut errors = Vec::new();
    for r in resources {
        match Pool::from_resource(r) {
            Ok(p) => pools.push(p),
            Err(e) => errors.push(e),
        }
    }
    pools.sort_by(|a, b| a.name.cmp(&b.name));
    (pools, errors)
}

/// The pool (enabled or not) whose CIDR holds `addr`.
pub fn pool_for_addr(pools: &[Pool], addr: IpAddr) -> Option<&Pool> {
    pools.iter().find(|p| p.contains(addr))
}

/// The enabled pool whose CIDR holds `addr`.
pub fn enabled_pool_for_addr(pools: &[Pool], addr: IpAddr) -> Option<&Pool> {
    pools.iter().find(|p| !p.spec.disabled && p.contains(addr))
}

/// What an allocation asks of pool selection.
#[derive(Debug, Clone)]
pub struct PoolRequest<'a> {
    pub version: IpVersion,
    /// The node asking (for messages), and its labels.
    pub node: &'a str,
    pub node_labels: &'a BTreeMap<String, String>,
    /// The pod's namespace labels, when known.
    pub namespace_labels: Option<&'a BTreeMap<String, String>>,
    /// Pools asked for explicitly (CIDRs); empty means choose automatically.
    pub requested: &'a [IpNet],
    pub use_for: IpPoolAllowedUse,
    /// Pools whose blocks are longer than this are skipped (reserved
    /// addresses at block edges need room).
    pub max_block_len: u8,
}

/// The outcome of pool selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSelection {
    /// Pools to allocate from, in order.
    pub usable: Vec<Pool>,
    /// Pools that select the node (before filtering by use): blocks affine
    /// to this node in other pools no longer belong to it.
    pub selecting_node: Vec<Pool>,
}

/// Calico's pool selection: requested pools are used as given (ignoring
/// selectors) if each is enabled; otherwise every enabled, automatic pool
/// whose node and namespace selectors match. Then pools that do not allow
/// the intended use are dropped.
pub fn select_pools(all: &[Pool], req: &PoolRequest<'_>) -> Result<PoolSelection, PoolError> {
    for r in req.requested {
        let v = IpVersion::of_net(r);
        if v != req.version {
            return Err(PoolError::WrongFamily {
                expected: req.version.number(),
                other: v.number(),
            });
        }
    }
    let enabled: Vec<&Pool> = all
        .iter()
        .filter(|p| {
            !p.spec.disabled && p.version() == req.version && p.block_len <= req.max_block_len
        })
        .collect();
    if enabled.is_empty() {
        return Err(PoolError::NoQualifiedPool);
    }

    let mut selecting = Vec::new();
    if !req.requested.is_empty() {
        for r in req.requested {
            let r = r.trunc();
            match enabled.iter().find(|p| p.cidr == r) {
                Some(p) => selecting.push((*p).clone()),
                None => return Err(PoolError::RequestedPoolUnavailable(r)),
            }
        }
    } else {
        for p in &enabled {
            if !p.is_automatic() {
                continue;
            }
            if p.selects_node(req.node_labels)? && p.selects_namespace(req.namespace_labels)? {
                selecting.push((*p).clone());
            }
        }
    }
    if selecting.is_empty() {
        return Err(PoolError::NoPoolsForNode(req.node.to_owned()));
    }
    let usable: Vec<Pool> = selecting
        .iter()
        .filter(|p| p.allows(req.use_for))
        .cloned()
        .collect();
    if usable.is_empty() {
        return Err(PoolError::NoPoolForUse(req.use_for));
    }
    Ok(PoolSelection {
        usable,
        selecting_node: selecting,
    })
}

/// Whether `block` lies inside one of `pools`.
pub fn block_in_pools(block: &IpNet, pools: &[Pool]) -> bool {
    pools.iter().any(|p| covers(&p.cidr, block))
}

/// Turns pool references from CNI configuration or a pod annotation (each
/// a CIDR or a pool name) into CIDRs, checking the family, as Calico's CNI
/// plugin resolves them.
pub fn resolve_pool_refs(
    refs: &[String],
    pools: &[IpPool],
    version: IpVersion,
) -> Result<Vec<IpNet>, PoolError> {
    let mut out = Vec::with_capacity(refs.len());
    for r in refs {
        let cidr = match calico_model::net::parse_cidr(r) {
            Some((_, net)) => net,
            None => pools
                .iter()
                .filter(|p| p.metadata.name == *r)
                .find_map(|p| calico_model::net::parse_cidr(&p.spec.cidr).map(|(_, n)| n))
                .ok_or_else(|| PoolError::UnknownPoolReference(r.clone()))?,
        };
        let v = IpVersion::of_net(&cidr);
        if v != version {
            return Err(PoolError::WrongFamily {
                expected: version.number(),
                other: v.number(),
            });
        }
        out.push(cidr);
    }
    Ok(out)
}

/// Parses the value of `cni.projectcalico.org/ipv4pools` (or `ipv6pools`):
/// a JSON list of pool names or CIDRs.
pub fn parse_pools_annotation(annotation: &str, value: &str) -> Result<Vec<String>, PoolError> {
    serde_json::from_str::<Vec<String>>(value).map_err(|e| PoolError::BadAnnotation {
        annotation: annotation.to_owned(),
        reason: format!(
            "{e} (expected a JSON list of pool names or CIDRs, e.g. [\"default-ipv4-ippool\"])"
        ),
    })
}

#[cfg(test)]
mod tests {
    use calico_model::ObjectMeta;

    use super::*;

    fn pool(name: &str, cidr: &str, f: impl FnOnce(&mut IpPoolSpec)) -> IpPool {
        let mut spec = IpPoolSpec {
            cidr: cidr.into(),
            ..Default::default()
        };
        f(&mut spec);
        IpPool {
            metadata: ObjectMeta::named(name),
            spec,
            status: None,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn request<'a>(node_labels: &'a BTreeMap<String, String>) -> PoolRequest<'a> {
        PoolRequest {
            version: IpVersion::V4,
            node: "node-1",
            node_labels,
            namespace_labels: None,
            requested: &[],
            use_for: IpPoolAllowedUse::Workload,
            max_block_len: 32,
        }
    }

    fn names(pools: &[Pool]) -> Vec<&str> {
        pools.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn defaults_and_bad_pools() {
        let p = Pool::from_resource(&pool("a", "10.0.0.0/16", |_| {})).unwrap();
        assert_eq!(p.block_len, 26);
        let p6 = Pool::from_resource(&pool("b", "fd00::/48", |_| {})).unwrap();
        assert_eq!(p6.block_len, 122);
        assert!(matches!(
            Pool::from_resource(&pool("c", "10.0.0.0/28", |s| s.block_size = 26)),
            Err(PoolError::InvalidBlockSize { .. })
        ));
        assert!(matches!(
            Pool::from_resource(&pool("d", "nonsense", |_| {})),
            Err(PoolError::InvalidCidr { .. })
        ));
        let (good, bad) = parse_pools(&[pool("z", "10.0.0.0/8", |_| {}), pool("y", "bad", |_| {})]);
        assert_eq!(names(&good), ["z"]);
        assert_eq!(bad.len(), 1);
    }

    #[test]
    fn selection_table() {
        let (pools, _) = parse_pools(&[
            pool("b-rack1", "10.1.0.0/16", |s| {
                s.node_selector = "rack == 'one'".into()
            }),
            pool("a-all", "10.0.0.0/16", |_| {}),
            pool("c-disabled", "10.2.0.0/16", |s| s.disabled = true),
            pool("d-tunnel", "10.3.0.0/16", |s| {
                s.allowed_uses = vec![IpPoolAllowedUse::Tunnel]
            }),
            pool("e-manual", "10.4.0.0/16", |s| {
                s.assignment_mode = Some(AssignmentMode::Manual)
            }),
            pool("f-ns", "10.5.0.0/16", |s| {
                s.namespace_selector = "team == 'x'".into()
            }),
            pool("g-v6", "fd00::/48", |_| {}),
        ]);
        let rack1 = labels(&[("rack", "one")]);
        let none = labels(&[]);
        let team_x = labels(&[("team", "x")]);

        let sel = select_pools(&pools, &request(&rack1)).unwrap();
        assert_eq!(names(&sel.usable), ["a-all", "b-rack1"]);
        assert_eq!(names(&sel.selecting_node), ["a-all", "b-rack1", "d-tunnel"]);

        let sel = select_pools(&pools, &request(&none)).unwrap();
        assert_eq!(names(&sel.usable), ["a-all"]);

        let mut req = request(&none);
        req.namespace_labels = Some(&team_x);
        assert_eq!(
            names(&select_pools(&pools, &req).unwrap().usable),
            ["a-all", "f-ns"]
        );

        let mut req = request(&none);
        req.use_for = IpPoolAllowedUse::Tunnel;
        assert_eq!(
            names(&select_pools(&pools, &req).unwrap().usable),
            ["a-all", "d-tunnel"]
        );

        let mut req = request(&none);
        req.version = IpVersion::V6;
        req.max_block_len = 128;
        assert_eq!(names(&select_pools(&pools, &req).unwrap().usable), ["g-v6"]);

        // A manual pool is used when asked for, selectors ignored.
        let wanted = ["10.4.0.0/16".parse().unwrap()];
        let mut req = request(&none);
        req.requested = &wanted;
        assert_eq!(
            names(&select_pools(&pools, &req).unwrap().usable),
            ["e-manual"]
        );

        let disabled = ["10.2.0.0/16".parse().unwrap()];
        let mut req = request(&none);
        req.requested = &disabled;
        assert_eq!(
            select_pools(&pools, &req).unwrap_err().to_string(),
            "the given pool (10.2.0.0/16) does not exist, or is not enabled"
        );

        let mut req = request(&none);
        req.use_for = IpPoolAllowedUse::LoadBalancer;
        assert_eq!(
            select_pools(&pools, &req).unwrap_err(),
            PoolError::NoPoolForUse(IpPoolAllowedUse::LoadBalancer)
        );

        let mut req = request(&none);
        req.max_block_len = 20;
        assert_eq!(
            select_pools(&pools, &req).unwrap_err(),
            PoolError::NoQualifiedPool
        );
    }

    #[test]
    fn selector_typo_names_the_pool() {
        let (pools, _) = parse_pools(&[pool("typo", "10.0.0.0/16", |s| {
            s.node_selector = "rack ==".into()
        })]);
        let err = select_pools(&pools, &request(&labels(&[])))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("typo") && err.contains("nodeSelector"),
            "{err}"
        );
    }

    #[test]
    fn references_and_annotation() {
        let resources = [
            pool("default-ipv4-ippool", "192.168.0.0/16", |_| {}),
            pool("v6", "fd00::/48", |_| {}),
        ];
        let refs = parse_pools_annotation(
            IPV4_POOLS_ANNOTATION,
            r#"["default-ipv4-ippool","10.9.0.0/24"]"#,
        )
        .unwrap();
        let cidrs = resolve_pool_refs(&refs, &resources, IpVersion::V4).unwrap();
        assert_eq!(
            cidrs,
            vec![
                "192.168.0.0/16".parse::<IpNet>().unwrap(),
                "10.9.0.0/24".parse().unwrap()
            ]
        );
        assert!(matches!(
            resolve_pool_refs(&["v6".into()], &resources, IpVersion::V4),
            Err(PoolError::WrongFamily {
                expected: 4,
                other: 6
            })
        ));
        assert!(matches!(
            resolve_pool_refs(&["missing".into()], &resources, IpVersion::V4),
            Err(PoolError::UnknownPoolReference(_))
        ));
        assert!(parse_pools_annotation(IPV4_POOLS_ANNOTATION, "default").is_err());
    }
}
