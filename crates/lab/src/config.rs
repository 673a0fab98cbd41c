//! What `calico-lab up` builds, in the install parameters' terms (the
//! seeds' `calico.encapsulationType` / `calico.encapsulationMode` /
//! `calico.calicoNetworkCIDR`, and calico-node's `CALICO_IPV4POOL_*`),
//! checked before anything is made.

use std::fmt;
use std::str::FromStr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The underlay: subnet `s` is `10.11.s.0/24`, its router at `.1`.
pub const UNDERLAY: &str = "10.11.0.0/16";

/// Which overlay the default pool uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encapsulation {
    #[serde(rename = "VXLAN")]
    Vxlan,
    #[serde(rename = "IPIP")]
    Ipip,
}

impl FromStr for Encapsulation {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_uppercase().as_str() {
            "VXLAN" | "CALICO_IPV4POOL_VXLAN" => Ok(Encapsulation::Vxlan),
            "IPIP" | "CALICO_IPV4POOL_IPIP" => Ok(Encapsulation::Ipip),
            _ => Err(format!(
                "{text:?} is not an encapsulation type: use VXLAN (CALICO_IPV4POOL_VXLAN) or IPIP (CALICO_IPV4POOL_IPIP)"
            )),
        }
    }
}

impl fmt::Display for Encapsulation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encapsulation::Vxlan => "VXLAN",
            Encapsulation::Ipip => "IPIP",
        })
    }
}

impl Encapsulation {
    /// The calico-node variable that sets this mode on the default pool.
    pub fn pool_variable(self) -> &'static str {
        match self {
            Encapsulation::Vxlan => "CALICO_IPV4POOL_VXLAN",
            Encapsulation::Ipip => "CALICO_IPV4POOL_IPIP",
        }
    }
}

/// `Always | CrossSubnet | Never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    Always,
    CrossSubnet,
    Never,
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "always" => Ok(Mode::Always),
            "crosssubnet" => Ok(Mode::CrossSubnet),
            "never" => Ok(Mode::Never),
            _ => Err(format!(
                "{text:?} is not an encapsulation mode: use Always, CrossSubnet or Never"
            )),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Always => "Always",
            Mode::CrossSubnet => "CrossSubnet",
            Mode::Never => "Never",
        })
    }
}

/// `embedded` (one SQLite file) or `etcd` (a server the lab starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatastoreKind {
    Embedded,
    Etcd,
}

impl FromStr for DatastoreKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "embedded" => Ok(DatastoreKind::Embedded),
            "etcd" | "etcdv3" => Ok(DatastoreKind::Etcd),
            _ => Err(format!("{text:?} is not a datastore: use embedded or etcd")),
        }
    }
}

impl fmt::Display for DatastoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DatastoreKind::Embedded => "embedded",
            DatastoreKind::Etcd => "etcd",
        })
    }
}

/// The lab's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabConfig {
    pub nodes: usize,
    pub pods_per_node: usize,
    pub subnets: u8,
    pub encapsulation: Encapsulation,
    pub mode: Mode,
    pub pod_cidr: Ipv4Net,
    pub block_size: u8,
    pub nat_outgoing: bool,
    pub datastore: DatastoreKind,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            nodes: 3,
            pods_per_node: 2,
            subnets: 1,
            encapsulation: Encapsulation::Vxlan,
            mode: Mode::Always,
            pod_cidr: "192.168.0.0/16".parse().expect("valid"),
            block_size: 26,
            nat_outgoing: false,
            datastore: DatastoreKind::Embedded,
        }
    }
}

impl LabConfig {
    /// Refuses shapes the lab cannot build, saying what to change.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=50).contains(&self.nodes) {
            return Err(format!("--nodes {} is out of range (1 to 50)", self.nodes));
        }
        if self.pods_per_node > 50 {
            return Err(format!(
                "--pods-per-node {} is out of range (0 to 50)",
                self.pods_per_node
            ));
        }
        if !(1..=2).contains(&self.subnets) {
            return Err(format!("--subnets {} must be 1 or 2", self.subnets));
        }
        if self.subnets == 2 && self.nodes < 2 {
            return Err("--subnets 2 needs at least 2 nodes".into());
        }
        if !(20..=32).contains(&self.block_size) {
            return Err(format!(
                "--block-size {} is out of range (20 to 32 for IPv4)",
                self.block_size
            ));
        }
        if self.pod_cidr.prefix_len() > self.block_size {
            return Err(format!(
                "--pod-cidr {} is smaller than one block (--block-size {})",
                self.pod_cidr, self.block_size
            ));
        }
        let underlay: Ipv4Net = UNDERLAY.parse().expect("valid");
        if self.pod_cidr.contains(&underlay.network())
            || underlay.contains(&self.pod_cidr.network())
        {
            return Err(format!(
                "--pod-cidr {} overlaps the lab's underlay {UNDERLAY}; choose another range",
                self.pod_cidr
            ));
        }
        Ok(())
    }

    /// The subnet (1 or 2) of node `index` (1-based): the first half of
    /// the nodes in subnet 1, the rest in subnet 2.
    pub fn subnet_of(&self, index: usize) -> u8 {
        if self.subnets == 2 && index > self.nodes.div_ceil(2) {
            2
        } else {
            1
        }
    }

    /// The pool's modes as calico-node's start-up reads them.
    pub fn pool_environment(&self) -> Vec<(&'static str, String)> {
        let (vxlan, ipip) = match self.encapsulation {
            Encapsulation::Vxlan => (self.mode, Mode::Never),
            Encapsulation::Ipip => (Mode::Never, self.mode),
        };
        vec![
            ("CALICO_IPV4POOL_CIDR", self.pod_cidr.to_string()),
            ("CALICO_IPV4POOL_BLOCK_SIZE", self.block_size.to_string()),
            ("CALICO_IPV4POOL_VXLAN", vxlan.to_string()),
            ("CALICO_IPV4POOL_IPIP", ipip.to_string()),
            (
                "CALICO_IPV4POOL_NAT_OUTGOING",
                self.nat_outgoing.to_string(),
            ),
            ("CALICO_IPV6POOL_CIDR", "none".into()),
        ]
    }

    /// Whether the pool encapsulates at all.
    pub fn encapsulates(&self) -> bool {
        self.mode != Mode::Never
    }

    /// calico-node's `CALICO_NETWORKING_BACKEND`, as Calico's manifests
    /// set it: `vxlan` for a VXLAN pool (no BGP), `bird` otherwise (BGP
    /// carries the routes, with or without IPIP).
    pub fn networking_backend(&self) -> &'static str {
        match (self.encapsulation, self.mode) {
            (Encapsulation::Vxlan, Mode::Always | Mode::CrossSubnet) => "vxlan",
            _ => "bird",
        }
    }

    /// How pods on different nodes reach each other, in a few words.
    pub fn routing_description(&self) -> String {
        match (self.encapsulation, self.mode) {
            (_, Mode::Never) => "BGP, no overlay".to_string(),
            (Encapsulation::Vxlan, mode) => format!("VXLAN {mode}"),
            (Encapsulation::Ipip, mode) => format!("IPIP {mode}, BGP"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_terms_parse() {
        for (text, expected) in [
            ("VXLAN", Encapsulation::Vxlan),
            ("vxlan", Encapsulation::Vxlan),
            ("CALICO_IPV4POOL_VXLAN", Encapsulation::Vxlan),
            ("IPIP", Encapsulation::Ipip),
            ("CALICO_IPV4POOL_IPIP", Encapsulation::Ipip),
        ] {
            assert_eq!(text.parse::<Encapsulation>().unwrap(), expected, "{text}");
        }
        assert!(
            "GRE"
                .parse::<Encapsulation>()
                .unwrap_err()
                .contains("VXLAN")
        );
        assert_eq!("crosssubnet".parse::<Mode>().unwrap(), Mode::CrossSubnet);
        assert!("sometimes".parse::<Mode>().is_err());
        assert_eq!(
            "etcdv3".parse::<DatastoreKind>().unwrap(),
            DatastoreKind::Etcd
        );
    }

    #[test]
    fn shapes_the_lab_cannot_build_are_refused_with_the_fix() {
        let ok = LabConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        let cases: Vec<(LabConfig, &str)> = vec![
            (
                LabConfig {
                    nodes: 0,
                    ..ok.clone()
                },
                "--nodes 0",
            ),
            (
                LabConfig {
                    subnets: 3,
                    ..ok.clone()
                },
                "must be 1 or 2",
            ),
            (
                LabConfig {
                    pod_cidr: "10.0.0.0/8".parse().unwrap(),
                    ..ok.clone()
                },
                "overlaps the lab's underlay",
            ),
            (
                LabConfig {
                    pod_cidr: "192.168.0.0/28".parse().unwrap(),
                    ..ok.clone()
                },
                "smaller than one block",
            ),
            (
                LabConfig {
                    block_size: 19,
                    ..ok.clone()
                },
                "--block-size 19",
            ),
        ];
        for (config, expected) in cases {
            let error = config.validate().unwrap_err();
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        }
        // BGP routes between the subnets, so no overlay is needed there.
        let bgp_across_subnets = LabConfig {
            mode: Mode::Never,
            subnets: 2,
            ..ok.clone()
        };
        assert_eq!(bgp_across_subnets.validate(), Ok(()));
        assert_eq!(bgp_across_subnets.networking_backend(), "bird");
    }

    #[test]
    fn nodes_split_across_subnets_and_pool_variables_follow_the_type() {
        let config = LabConfig {
            nodes: 3,
            subnets: 2,
            mode: Mode::CrossSubnet,
            ..LabConfig::default()
        };
        assert_eq!(
            (1..=3).map(|i| config.subnet_of(i)).collect::<Vec<_>>(),
            vec![1, 1, 2]
        );
        let env = config.pool_environment();
        assert!(env.contains(&("CALICO_IPV4POOL_VXLAN", "CrossSubnet".into())));
        assert!(env.contains(&("CALICO_IPV4POOL_IPIP", "Never".into())));
        assert!(env.contains(&("CALICO_IPV4POOL_NAT_OUTGOING", "false".into())));
        let one = LabConfig::default();
        assert!((1..=3).all(|i| one.subnet_of(i) == 1));
    }
}
