//! IP address management resources users apply: IPPool, IPReservation and
//! IPAMConfiguration.

use serde::{Deserialize, Serialize};

use crate::meta::{Condition, ObjectMeta};
use crate::serde_util::{is_false, is_zero_i64};

/// A range of addresses Calico hands out, and how traffic to it is
/// encapsulated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpPool {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: IpPoolSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<IpPoolStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpPoolSpec {
    #[serde(default)]
    pub cidr: String,
    #[serde(rename = "vxlanMode", default, skip_serializing_if = "Option::is_none")]
    pub vxlan_mode: Option<EncapMode>,
    #[serde(rename = "ipipMode", default, skip_serializing_if = "Option::is_none")]
    pub ipip_mode: Option<EncapMode>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub nat_outgoing: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    #[serde(rename = "disableBGPExport", default, skip_serializing_if = "is_false")]
    pub disable_bgp_export: bool,
    /// Prefix length of the blocks carved out of the pool; 0 means "default".
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub block_size: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_selector: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace_selector: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_uses: Vec<IpPoolAllowedUse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_mode: Option<AssignmentMode>,
}

impl IpPoolSpec {
    /// The parsed CIDR, if valid.
    pub fn network(&self) -> Option<ipnet::IpNet> {
        crate::net::parse_cidr_or_ip(&self.cidr).map(|(_, net)| net)
    }

    /// Whether an encapsulation mode other than `Never` is set.
    pub fn ipip_enabled(&self) -> bool {
        self.ipip_mode.is_some_and(|m| m != EncapMode::Never)
    }

    pub fn vxlan_enabled(&self) -> bool {
        self.vxlan_mode.is_some_and(|m| m != EncapMode::Never)
    }

    /// Whether the pool may be used for this purpose (an unset list means
    /// Calico's default, Workload and Tunnel).
    pub fn allows(&self, using: IpPoolAllowedUse) -> bool {
        if self.allowed_uses.is_empty() {
            matches!(using, IpPoolAllowedUse::Workload | IpPoolAllowedUse::Tunnel)
        } else {
            self.allowed_uses.contains(&using)
        }
    }
}

/// `ipipMode` / `vxlanMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EncapMode {
    Never,
    Always,
    CrossSubnet,
}

impl EncapMode {
    pub fn as_str(self) -> &'static str {
        match self {
            EncapMode::Never => "Never",
            EncapMode::Always => "Always",
            EncapMode::CrossSubnet => "CrossSubnet",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum IpPoolAllowedUse {
    Workload,
    Tunnel,
    LoadBalancer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AssignmentMode {
    Automatic,
    Manual,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpPoolStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Addresses inside pools that IPAM must never hand out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpReservation {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: IpReservationSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpReservationSpec {
    #[serde(
        rename = "reservedCIDRs",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub reserved_cidrs: Vec<String>,
}

/// Cluster-wide IPAM settings (a singleton named `default`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpamConfiguration {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: IpamConfigurationSpec,
}

/// `strictAffinity` and `autoAllocateBlocks` are always written, as Calico
/// does; `autoAllocateBlocks` defaults to true when absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpamConfigurationSpec {
    #[serde(default)]
    pub strict_affinity: bool,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub max_blocks_per_host: i64,
    #[serde(default = "default_true")]
    pub auto_allocate_blocks: bool,
    #[serde(
        rename = "kubeVirtVMAddressPersistence",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub kube_virt_vm_address_persistence: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub ip_cooldown_seconds: i64,
}

impl Default for IpamConfigurationSpec {
    fn default() -> Self {
        IpamConfigurationSpec {
            strict_affinity: false,
            max_blocks_per_host: 0,
            auto_allocate_blocks: true,
            kube_virt_vm_address_persistence: None,
            ip_cooldown_seconds: 0,
        }
    }
}

fn default_true() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_field_names() {
        let json = r#"{"metadata":{"name":"default-ipv4-ippool"},"spec":{"cidr":"192.168.0.0/16","vxlanMode":"CrossSubnet","ipipMode":"Never","natOutgoing":true,"disableBGPExport":true,"blockSize":26,"nodeSelector":"all()","allowedUses":["Workload","Tunnel"],"assignmentMode":"Automatic"}}"#;
        let p: IpPool = serde_json::from_str(json).unwrap();
        assert_eq!(p.spec.vxlan_mode, Some(EncapMode::CrossSubnet));
        assert!(p.spec.vxlan_enabled() && !p.spec.ipip_enabled());
        assert_eq!(serde_json::to_string(&p).unwrap(), json);
    }

    #[test]
    fn bad_encap_mode_rejected() {
        let err = serde_json::from_str::<IpPool>(
            r#"{"metadata":{"name":"p"},"spec":{"cidr":"10.0.0.0/8","ipipMode":"Sometimes"}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("Sometimes"), "{err}");
    }

    #[test]
    fn ipam_config_defaults_and_output() {
        let c: IpamConfiguration =
            serde_json::from_str(r#"{"metadata":{"name":"default"},"spec":{}}"#).unwrap();
        assert!(c.spec.auto_allocate_blocks);
        assert_eq!(
            serde_json::to_string(&c.spec).unwrap(),
            r#"{"strictAffinity":false,"autoAllocateBlocks":true}"#
        );
    }

    #[test]
    fn allowed_uses_default() {
        let spec = IpPoolSpec::default();
        assert!(spec.allows(IpPoolAllowedUse::Workload));
        assert!(!spec.allows(IpPoolAllowedUse::LoadBalancer));
    }
}
