//! The resource kinds: names, apiVersions, etcd plurals, scope, and the
//! names `calicoctl` accepts for each on its command line.

use std::fmt;

use crate::k8s::NETWORKING_API_VERSION;

/// apiVersion of every Calico resource.
pub const CALICO_API_VERSION: &str = "projectcalico.org/v3";

/// Every kind a user can apply (plus Kubernetes NetworkPolicy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    BgpConfiguration,
    BgpFilter,
    BgpPeer,
    CalicoNodeStatus,
    ClusterInformation,
    FelixConfiguration,
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    HostEndpoint,
    IpamConfiguration,
    IpPool,
    IpReservation,
    KubeControllersConfiguration,
    NetworkPolicy,
    NetworkSet,
    Node,
    Profile,
    StagedGlobalNetworkPolicy,
    StagedKubernetesNetworkPolicy,
    StagedNetworkPolicy,
    Tier,
    WorkloadEndpoint,
    /// `networking.k8s.io/v1` NetworkPolicy.
    KubernetesNetworkPolicy,
}

/// Per-kind facts, one row per kind so they cannot drift apart.
struct KindInfo {
    kind: Kind,
    name: &'static str,
    plural: &'static str,
    namespaced: bool,
    cli_names: &'static [&'static str],
}

const KINDS: &[KindInfo] = &[
    KindInfo {
        kind: Kind::BgpConfiguration,
        name: "BGPConfiguration",
        plural: "bgpconfigurations",
        namespaced: false,
        cli_names: &[
            "bgpconfiguration",
            "bgpconfigurations",
            "bgpconfig",
            "bgpconfigs",
        ],
    },
    KindInfo {
        kind: Kind::BgpFilter,
        name: "BGPFilter",
        plural: "bgpfilters",
        namespaced: false,
        cli_names: &["bgpfilter", "bgpfilters", "bgpf", "bgpfs", "bf", "bfs"],
    },
    KindInfo {
        kind: Kind::BgpPeer,
        name: "BGPPeer",
        plural: "bgppeers",
        namespaced: false,
        cli_names: &["bgppeer", "bgppeers", "bgpp", "bgpps", "bp", "bps"],
    },
    KindInfo {
        kind: Kind::CalicoNodeStatus,
        name: "CalicoNodeStatus",
        plural: "caliconodestatuses",
        namespaced: false,
        cli_names: &[
            "caliconodestatus",
            "caliconodestatuses",
            "nodestatus",
            "nodestatuses",
        ],
    },
    KindInfo {
        kind: Kind::ClusterInformation,
        name: "ClusterInformation",
        plural: "clusterinformations",
        namespaced: false,
        cli_names: &[
            "clusterinformation",
            "clusterinformations",
            "clusterinfo",
            "clusterinfos",
        ],
    },
    KindInfo {
        kind: Kind::FelixConfiguration,
        name: "FelixConfiguration",
        plural: "felixconfigurations",
        namespaced: false,
        cli_names: &[
            "felixconfiguration",
            "felixconfigurations",
            "felixconfig",
            "felixconfigs",
        ],
    },
    KindInfo {
        kind: Kind::GlobalNetworkPolicy,
        name: "GlobalNetworkPolicy",
        plural: "globalnetworkpolicies",
        namespaced: false,
        cli_names: &[
            "globalnetworkpolicy",
            "globalnetworkpolicies",
            "gnp",
            "gnps",
        ],
    },
    KindInfo {
        kind: Kind::GlobalNetworkSet,
        name: "GlobalNetworkSet",
        plural: "globalnetworksets",
        namespaced: false,
        cli_names: &["globalnetworkset", "globalnetworksets", "gnetsets"],
    },
    KindInfo {
        kind: Kind::HostEndpoint,
        name: "HostEndpoint",
        plural: "hostendpoints",
        namespaced: false,
        cli_names: &["hostendpoint", "hostendpoints", "hep", "heps"],
    },
    KindInfo {
        kind: Kind::IpamConfiguration,
        name: "IPAMConfiguration",
        plural: "ipamconfigurations",
        namespaced: false,
        cli_names: &[
            "ipamconfiguration",
            "ipamconfigurations",
            "ipamconfig",
            "ipamconfigs",
        ],
    },
    KindInfo {
        kind: Kind::IpPool,
        name: "IPPool",
        plural: "ippools",
        namespaced: false,
        cli_names: &["ippool", "ippools", "ipp", "ipps", "pool", "pools"],
    },
    KindInfo {
        kind: Kind::IpReservation,
        name: "IPReservation",
        plural: "ipreservations",
        namespaced: false,
        cli_names: &[
            "ipreservation",
            "ipreservations",
            "reservation",
            "reservations",
        ],
    },
    KindInfo {
        kind: Kind::KubeControllersConfiguration,
        name: "KubeControllersConfiguration",
        plural: "kubecontrollersconfigurations",
        namespaced: false,
        cli_names: &[
            "kubecontrollersconfiguration",
            "kubecontrollersconfigurations",
            "kubecontrollersconfig",
            "kubecontrollersconfigs",
        ],
    },
    KindInfo {
        kind: Kind::NetworkPolicy,
        name: "NetworkPolicy",
        plural: "networkpolicies",
        namespaced: true,
        cli_names: &[
            "networkpolicy",
            "networkpolicies",
            "policy",
            "np",
            "policies",
            "pol",
            "pols",
        ],
    },
    KindInfo {
        kind: Kind::NetworkSet,
        name: "NetworkSet",
        plural: "networksets",
        namespaced: true,
        cli_names: &["networkset", "networksets", "netsets"],
    },
    KindInfo {
        kind: Kind::Node,
        name: "Node",
        plural: "nodes",
        namespaced: false,
        cli_names: &["node", "nodes", "no", "nos"],
    },
    KindInfo {
        kind: Kind::Profile,
        name: "Profile",
        plural: "profiles",
        namespaced: false,
        cli_names: &["profile", "profiles", "pro", "pros"],
    },
    KindInfo {
        kind: Kind::StagedGlobalNetworkPolicy,
        name: "StagedGlobalNetworkPolicy",
        plural: "stagedglobalnetworkpolicies",
        namespaced: false,
        cli_names: &[
            "stagedglobalnetworkpolicy",
            "stagedglobalnetworkpolicies",
            "sgnp",
            "sgnps",
        ],
    },
    KindInfo {
        kind: Kind::StagedKubernetesNetworkPolicy,
        name: "StagedKubernetesNetworkPolicy",
        plural: "stagedkubernetesnetworkpolicies",
        namespaced: true,
        cli_names: &[
            "stagedkubernetesnetworkpolicy",
            "stagedkubernetesnetworkpolicies",
            "stagedkubernetespolicy",
            "sknp",
            "stagedkubernetespolicies",
            "skpol",
            "skpols",
        ],
    },
    KindInfo {
        kind: Kind::StagedNetworkPolicy,
        name: "StagedNetworkPolicy",
        plural: "stagednetworkpolicies",
        namespaced: true,
        cli_names: &[
            "stagednetworkpolicy",
            "stagednetworkpolicies",
            "stagedpolicy",
            "snp",
            "stagedpolicies",
            "spol",
            "spols",
        ],
    },
    KindInfo {
        kind: Kind::Tier,
        name: "Tier",
        plural: "tiers",
        namespaced: false,
        cli_names: &["tier", "tiers"],
    },
    KindInfo {
        kind: Kind::WorkloadEndpoint,
        name: "WorkloadEndpoint",
        plural: "workloadendpoints",
        namespaced: true,
        cli_names: &["workloadendpoint", "workloadendpoints", "wep", "weps"],
    },
    KindInfo {
        kind: Kind::KubernetesNetworkPolicy,
        name: "NetworkPolicy",
        // What Calico's etcd layer calls the Kubernetes policies it mirrors.
        plural: "kubernetesnetworkpolicies",
        namespaced: true,
        // calicoctl does not manage Kubernetes policies; kubectl's names and
        // the fully qualified form are accepted so our CLI can read them.
        cli_names: &[
            "networkpolicy.networking.k8s.io",
            "networkpolicies.networking.k8s.io",
            "netpol",
            "netpols",
        ],
    },
];

impl Kind {
    /// Every kind, in a stable order.
    pub const ALL: [Kind; 23] = [
        Kind::BgpConfiguration,
        Kind::BgpFilter,
        Kind::BgpPeer,
        Kind::CalicoNodeStatus,
        Kind::ClusterInformation,
        Kind::FelixConfiguration,
        Kind::GlobalNetworkPolicy,
        Kind::GlobalNetworkSet,
        Kind::HostEndpoint,
        Kind::IpamConfiguration,
        Kind::IpPool,
        Kind::IpReservation,
        Kind::KubeControllersConfiguration,
        Kind::NetworkPolicy,
        Kind::NetworkSet,
        Kind::Node,
        Kind::Profile,
        Kind::StagedGlobalNetworkPolicy,
        Kind::StagedKubernetesNetworkPolicy,
        Kind::StagedNetworkPolicy,
        Kind::Tier,
        Kind::WorkloadEndpoint,
        Kind::KubernetesNetworkPolicy,
    ];

    fn info(self) -> &'static KindInfo {
        KINDS
            .iter()
            .find(|i| i.kind == self)
            .expect("every Kind has a row in KINDS")
    }

    /// The `kind:` value, e.g. `"IPPool"`.
    pub fn as_str(self) -> &'static str {
        self.info().name
    }

    /// The `apiVersion:` value.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::KubernetesNetworkPolicy => NETWORKING_API_VERSION,
            _ => CALICO_API_VERSION,
        }
    }

    /// The lower-case plural Calico uses in etcd keys, e.g. `"ippools"`.
    pub fn plural(self) -> &'static str {
        self.info().plural
    }

    /// Whether resources of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        self.info().namespaced
    }

    /// The `kind:` of a list of this kind, e.g. `"IPPoolList"`.
    pub fn list_kind(self) -> String {
        format!("{}List", self.as_str())
    }

    /// The kind named by an `apiVersion` and `kind` pair.
    pub fn from_api(api_version: &str, kind: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.api_version() == api_version && k.as_str() == kind)
    }

    /// The kind whose etcd plural this is.
    pub fn from_plural(plural: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.plural() == plural)
    }

    /// The kind a `calicoctl` command line names: singular, plural or short
    /// alias, any case (`ippool`, `IPPools`, `ipp`, `gnp`, `hep`, `wep`...).
    pub fn from_cli_name(name: &str) -> Option<Kind> {
        let lower = name.to_ascii_lowercase();
        KINDS
            .iter()
            .find(|i| i.cli_names.contains(&lower.as_str()))
            .map(|i| i.kind)
    }

    /// The names [`Kind::from_cli_name`] accepts for this kind.
    pub fn cli_names(self) -> &'static [&'static str] {
        self.info().cli_names
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_facts() {
        let cases: &[(Kind, &str, &str, bool)] = &[
            (Kind::IpPool, "IPPool", "ippools", false),
            (
                Kind::NetworkPolicy,
                "NetworkPolicy",
                "networkpolicies",
                true,
            ),
            (
                Kind::GlobalNetworkPolicy,
                "GlobalNetworkPolicy",
                "globalnetworkpolicies",
                false,
            ),
            (
                Kind::WorkloadEndpoint,
                "WorkloadEndpoint",
                "workloadendpoints",
                true,
            ),
            (
                Kind::KubeControllersConfiguration,
                "KubeControllersConfiguration",
                "kubecontrollersconfigurations",
                false,
            ),
            (
                Kind::CalicoNodeStatus,
                "CalicoNodeStatus",
                "caliconodestatuses",
                false,
            ),
            (Kind::BgpFilter, "BGPFilter", "bgpfilters", false),
            (
                Kind::IpamConfiguration,
                "IPAMConfiguration",
                "ipamconfigurations",
                false,
            ),
            (Kind::NetworkSet, "NetworkSet", "networksets", true),
        ];
        for (kind, name, plural, ns) in cases {
            assert_eq!(kind.as_str(), *name);
            assert_eq!(kind.plural(), *plural);
            assert_eq!(kind.namespaced(), *ns, "{name}");
            assert_eq!(Kind::from_plural(plural), Some(*kind));
            assert_eq!(Kind::from_api(CALICO_API_VERSION, name), Some(*kind));
        }
        assert_eq!(
            Kind::from_api("networking.k8s.io/v1", "NetworkPolicy"),
            Some(Kind::KubernetesNetworkPolicy)
        );
        assert_eq!(Kind::from_api("projectcalico.org/v2", "IPPool"), None);
    }

    #[test]
    fn cli_names() {
        let cases: &[(&str, Option<Kind>)] = &[
            ("ippool", Some(Kind::IpPool)),
            ("IPPools", Some(Kind::IpPool)),
            ("ipp", Some(Kind::IpPool)),
            ("pool", Some(Kind::IpPool)),
            ("gnp", Some(Kind::GlobalNetworkPolicy)),
            ("np", Some(Kind::NetworkPolicy)),
            ("policy", Some(Kind::NetworkPolicy)),
            ("hep", Some(Kind::HostEndpoint)),
            ("weps", Some(Kind::WorkloadEndpoint)),
            ("bgpconfig", Some(Kind::BgpConfiguration)),
            ("felixconfig", Some(Kind::FelixConfiguration)),
            ("nodestatus", Some(Kind::CalicoNodeStatus)),
            (
                "kubecontrollersconfig",
                Some(Kind::KubeControllersConfiguration),
            ),
            ("gnetsets", Some(Kind::GlobalNetworkSet)),
            ("netpol", Some(Kind::KubernetesNetworkPolicy)),
            ("ippoolz", None),
            ("", None),
        ];
        for (name, want) in cases {
            assert_eq!(Kind::from_cli_name(name), *want, "{name}");
        }
    }

    #[test]
    fn every_kind_has_distinct_plural_and_names() {
        let mut plurals: Vec<_> = Kind::ALL.iter().map(|k| k.plural()).collect();
        plurals.sort();
        plurals.dedup();
        assert_eq!(plurals.len(), Kind::ALL.len());
        let mut names: Vec<_> = Kind::ALL.iter().flat_map(|k| k.cli_names()).collect();
        let total = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), total, "a CLI name maps to two kinds");
        assert_eq!(KINDS.len(), Kind::ALL.len());
    }
}
