//! The network configuration on stdin, with Calico's fields.
//!
//! Unknown fields are tolerated, as Calico tolerates them; fields Calico
//! knows must have the type Calico expects, and a mismatch is reported with
//! the path of the field (`ipam.ipv4_pools[0]: invalid type …`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use calico_datastore::Durability;
use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use crate::error::{CniError, ErrorCode};
use crate::result::Dns;
use crate::version::{SpecVersion, config_version};

/// Where Calico's node agent writes the node's name.
pub const DEFAULT_NODENAME_FILE: &str = "/var/lib/calico/nodename";

/// Where Calico's node agent writes the MTU it worked out for pods.
pub const DEFAULT_MTU_FILE: &str = "/var/lib/calico/mtu";

/// The smallest and largest MTU a veth accepts.
pub const MTU_RANGE: (i64, i64) = (68, 65535);

/// Calico's CNI network configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct NetConf {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "type")]
    pub plugin_type: String,
    /// `vxlan` makes Calico record the node's VXLAN tunnel address (a
    /// Windows-only path in Calico; carried for compatibility).
    pub mode: String,
    pub ipam: IpamConf,
    /// 0 means "not set": use the MTU file, then the kernel default.
    pub mtu: i64,
    pub num_queues: i64,
    pub nodename: String,
    pub nodename_file: String,
    pub nodename_file_optional: bool,
    /// Deprecated spelling of `nodename`.
    pub hostname: String,
    pub datastore_type: String,
    /// How the embedded datastore commits: `"normal"` (the default) or
    /// `"full"`; see [`NetConf::embedded_durability`].
    pub datastore_durability: String,
    pub etcd_endpoints: String,
    pub etcd_discovery_srv: String,
    pub etcd_scheme: String,
    pub etcd_key_file: String,
    pub etcd_cert_file: String,
    pub etcd_ca_cert_file: String,
    /// Deprecated: `host:port` of a single etcd.
    pub etcd_authority: String,
    /// The embedded datastore's file, over `EMBEDDED_DATASTORE_PATH`: a
    /// runtime does not always run its plugins with the environment it was
    /// started with (podman's cleanup process, started by conmon, runs DEL
    /// with its own).
    pub embedded_datastore_path: String,
    pub log_level: String,
    pub log_file_path: String,
    pub log_file_max_size: i64,
    pub log_file_max_age: i64,
    pub log_file_max_count: i64,
    pub policy: Policy,
    pub kubernetes: Kubernetes,
    pub feature_control: FeatureControl,
    pub container_settings: ContainerSettings,
    pub include_default_routes: bool,
    /// `veth` (default) or `netkit`.
    pub device_type: String,
    pub require_mtu_file: bool,
    pub ipam_lock_file: String,
    pub policy_setup_timeout_seconds: i64,
    pub endpoint_status_dir: String,
    pub readiness_gates: Vec<String>,
    pub dataplane_options: BTreeMap<String, serde_json::Value>,
    /// The well-known `dns` key of the CNI specification.
    pub dns: Option<Dns>,
    #[serde(rename = "runtimeConfig")]
    pub runtime_config: RuntimeConfig,
    /// The previous plugin's (or the ADD's) result, in its own version.
    #[serde(rename = "prevResult")]
    pub prev_result: Option<serde_json::Value>,
    /// `GC`: the attachments that are still valid.
    #[serde(rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<Attachment>>,
    pub args: Option<serde_json::Value>,
}

/// The `ipam` section. Calico's own IPAM reads the assignment fields; a
/// delegated plugin (`host-local`) reads whatever it wants from the raw
/// configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct IpamConf {
    #[serde(rename = "type")]
    pub ipam_type: String,
    pub subnet: String,
    /// Calico writes these as the strings `"true"`/`"false"`; booleans are
    /// accepted too.
    #[serde(deserialize_with = "bool_or_string")]
    pub assign_ipv4: Option<bool>,
    #[serde(deserialize_with = "bool_or_string")]
    pub assign_ipv6: Option<bool>,
    /// Pools by CIDR or by IPPool name.
    pub ipv4_pools: Vec<String>,
    pub ipv6_pools: Vec<String>,
    /// `host-local`'s routes; Calico uses their destinations as the pod's
    /// routes when `host-local` is the IPAM.
    pub routes: Vec<IpamRoute>,
    pub ranges: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct IpamRoute {
    pub dst: String,
    pub gw: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// `k8s` makes the endpoint's profiles and labels come from the pod.
    #[serde(rename = "type")]
    pub policy_type: String,
    pub k8s_api_root: String,
    pub k8s_auth_token: String,
    pub k8s_client_certificate: String,
    pub k8s_client_key: String,
    pub k8s_certificate_authority: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Kubernetes {
    pub k8s_api_root: String,
    pub kubeconfig: String,
    pub node_name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct FeatureControl {
    pub ip_addrs_no_ipam: bool,
    pub floating_ips: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ContainerSettings {
    pub allow_ip_forwarding: bool,
}

/// `runtimeConfig`: the capability arguments the runtime passed.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RuntimeConfig {
    pub dns: RuntimeDns,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// The `dns` capability (its keys differ from the result's `dns`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RuntimeDns {
    pub servers: Vec<String>,
    pub domain: String,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// One entry of `cni.dev/valid-attachments`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

fn bool_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    Ok(match Option::<Flag>::deserialize(d)? {
        None => None,
        Some(Flag::Bool(b)) => Some(b),
        Some(Flag::Text(text)) => match text.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "expected \"true\" or \"false\", found {other:?}"
                )));
            }
        },
    })
}

impl NetConf {
    /// Decodes the configuration from stdin. A field of the wrong type is
    /// reported with its path (error code 6).
    pub fn parse(bytes: &[u8]) -> Result<Self, CniError> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let msg = if path == "." || path == "?" || path.is_empty() {
                format!("decoding the network configuration: {inner}")
            } else {
                format!("decoding the network configuration: field {path}: {inner}")
            };
            CniError::new(ErrorCode::Decode, msg)
        })
    }

    /// The configuration's CNI version; absent means 0.2.0 (error code 1 if
    /// it is not one this plugin speaks).
    pub fn version(&self) -> Result<SpecVersion, CniError> {
        config_version(Some(&self.cni_version)).map_err(|e| {
            CniError::new(ErrorCode::IncompatibleVersion, "incompatible CNI versions")
                .with_details(e.to_string())
        })
    }

    /// How the embedded datastore commits this plugin's writes.
    ///
    /// The plugin defaults to [`Durability::Normal`] (SQLite's
    /// `synchronous=NORMAL` in WAL mode), where the node agent and
    /// calicoctl keep `FULL`. Each commit then reaches the operating system
    /// before it returns, so a crash of any process loses nothing, but is
    /// not fsynced: a power failure or kernel crash can lose the last
    /// commits (never corrupt the file, never tear one apart). An ADD
    /// commits three times (IPAM handle, IPAM block, WorkloadEndpoint), and
    /// with an fsync each those commits are the largest and least
    /// predictable part of its latency (`bench/RESULTS.md`). What a lost commit recorded (an address, an endpoint)
    /// belongs to a pod whose network namespace did not survive the same
    /// power failure either: its runtime calls ADD again after the
    /// restart, and the WAL only ever loses a suffix of commits, so the
    /// records that remain stay consistent with each other.
    /// `"datastore_durability": "full"` gives etcd's guarantee (every
    /// commit on disk) at that cost.
    pub fn embedded_durability(&self) -> Result<Durability, CniError> {
        match self.datastore_durability.to_ascii_lowercase().as_str() {
            "" | "normal" => Ok(Durability::Normal),
            "full" => Ok(Durability::Full),
            other => Err(CniError::new(
                ErrorCode::InvalidConfig,
                format!("unknown datastore_durability {other:?} (supported: \"normal\", \"full\")"),
            )),
        }
    }

    /// Checks what can be checked without the host: the name, the MTU,
    /// the device type, the IPAM section (error code 7, or 2 for a field
    /// this plugin does not support).
    pub fn validate(&self) -> Result<(), CniError> {
        let invalid = |msg: String| Err(CniError::new(ErrorCode::InvalidConfig, msg));
        if self.name.is_empty() {
            return invalid("missing network name (field \"name\")".into());
        }
        if !crate::env::valid_name(&self.name) {
            return invalid(format!(
                "invalid characters in network name {:?}: only letters, digits, '_', '.' and '-' are allowed, starting with a letter or digit",
                self.name
            ));
        }
        if self.mtu != 0 && !(MTU_RANGE.0..=MTU_RANGE.1).contains(&self.mtu) {
            return invalid(format!(
                "mtu {} is out of range ({}-{})",
                self.mtu, MTU_RANGE.0, MTU_RANGE.1
            ));
        }
        if self.num_queues < 0 {
            return invalid(format!("num_queues {} is negative", self.num_queues));
        }
        self.embedded_durability()?;
        match self.device_type.as_str() {
            "" | "veth" => {}
            "netkit" => {
                return Err(CniError::new(
                    ErrorCode::UnsupportedField,
                    "unsupported field device_type: \"netkit\" (only \"veth\" is supported)",
                ));
            }
            other => {
                return invalid(format!(
                    "unknown device_type {other:?} (supported: \"veth\", \"netkit\")"
                ));
            }
        }
        if self.ipam.ipam_type.is_empty() {
            return invalid("missing IPAM plugin type (field \"ipam.type\")".into());
        }
        if self.ipam.ipam_type.contains('/') {
            return invalid(format!(
                "invalid IPAM plugin type {:?}: it must be a file name",
                self.ipam.ipam_type
            ));
        }
        if self.ipam.ipam_type == "calico-ipam"
            && self.ipam.assign_ipv4 == Some(false)
            && self.ipam.assign_ipv6 != Some(true)
        {
            return invalid(
                "ipam.assign_ipv4 is \"false\" and ipam.assign_ipv6 is not \"true\": no address would be assigned".into(),
            );
        }
        for (field, pools, v4) in [
            ("ipam.ipv4_pools", &self.ipam.ipv4_pools, true),
            ("ipam.ipv6_pools", &self.ipam.ipv6_pools, false),
        ] {
            for pool in pools {
                if let Ok(net) = pool.parse::<IpNet>()
                    && net.addr().is_ipv4() != v4
                {
                    return invalid(format!(
                        "{field} entry {pool:?} is not an IPv{} CIDR",
                        if v4 { 4 } else { 6 }
                    ));
                }
            }
        }
        for subnet in [&self.ipam.subnet] {
            if subnet.eq_ignore_ascii_case("usePodCidr")
                || subnet.eq_ignore_ascii_case("usePodCidrIPv6")
            {
                return Err(CniError::new(
                    ErrorCode::UnsupportedField,
                    format!(
                        "unsupported field ipam.subnet: {subnet:?} needs the node's podCIDR from the Kubernetes API, which this plugin cannot reach; give the subnet explicitly"
                    ),
                ));
            }
        }
        self.pod_routes()?;
        Ok(())
    }

    /// The destinations routed out of the pod via the gateway: Calico's
    /// defaults (`0.0.0.0/0`, `::/0`), or the `host-local` IPAM's routes
    /// when that IPAM is configured with some (plus the defaults if
    /// `include_default_routes`).
    pub fn pod_routes(&self) -> Result<Vec<IpNet>, CniError> {
        let defaults: Vec<IpNet> = vec![
            "0.0.0.0/0".parse().expect("valid"),
            "::/0".parse().expect("valid"),
        ];
        if self.ipam.ipam_type != "host-local" || self.ipam.routes.is_empty() {
            return Ok(defaults);
        }
        let mut routes = if self.include_default_routes {
            defaults
        } else {
            Vec::new()
        };
        for route in &self.ipam.routes {
            if route.dst.is_empty() {
                continue;
            }
            let dst: IpNet = route.dst.parse().map_err(|_| {
                CniError::new(
                    ErrorCode::InvalidConfig,
                    format!("ipam.routes: dst {:?} is not a CIDR", route.dst),
                )
            })?;
            routes.push(dst.trunc());
        }
        Ok(routes)
    }

    /// Whether Calico's IPAM should assign an IPv4 / IPv6 address
    /// (defaults: IPv4 yes, IPv6 no).
    pub fn assign_families(&self) -> (bool, bool) {
        (
            self.ipam.assign_ipv4.unwrap_or(true),
            self.ipam.assign_ipv6.unwrap_or(false),
        )
    }

    /// The nodename file to read (configured or Calico's default).
    pub fn nodename_file(&self) -> &str {
        if self.nodename_file.is_empty() {
            DEFAULT_NODENAME_FILE
        } else {
            &self.nodename_file
        }
    }

    /// The node's name, in Calico's order of preference: `nodename` in the
    /// configuration, the nodename file's content, the deprecated
    /// `hostname`, the OS host name.
    pub fn resolve_nodename(
        &self,
        nodename_file_content: Option<&str>,
        os_hostname: &str,
    ) -> String {
        if !self.nodename.is_empty() {
            return self.nodename.clone();
        }
        if let Some(content) = nodename_file_content
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            return content.to_string();
        }
        if !self.hostname.is_empty() {
            return self.hostname.clone();
        }
        os_hostname.trim().to_lowercase()
    }

    /// The MTU to give the pod: the configuration's, else the MTU file's
    /// (Calico's node agent writes it), else none (kernel default).
    pub fn resolve_mtu(&self, mtu_file_content: Option<&str>) -> Result<Option<u32>, CniError> {
        if self.mtu != 0 {
            return Ok(Some(self.mtu as u32));
        }
        match mtu_file_content {
            Some(text) => {
                let mtu: i64 = text.trim().parse().map_err(|_| {
                    CniError::new(
                        ErrorCode::InvalidConfig,
                        format!(
                            "MTU file {DEFAULT_MTU_FILE} holds {:?}, not a number",
                            text.trim()
                        ),
                    )
                })?;
                if !(MTU_RANGE.0..=MTU_RANGE.1).contains(&mtu) {
                    return Err(CniError::new(
                        ErrorCode::InvalidConfig,
                        format!(
                            "MTU file {DEFAULT_MTU_FILE} holds {mtu}, out of range ({}-{})",
                            MTU_RANGE.0, MTU_RANGE.1
                        ),
                    ));
                }
                Ok(Some(mtu as u32))
            }
            None if self.require_mtu_file => Err(CniError::new(
                ErrorCode::InvalidConfig,
                format!(
                    "require_mtu_file is set but {DEFAULT_MTU_FILE} does not exist: is calico-node running?"
                ),
            )),
            None => Ok(None),
        }
    }

    /// The addresses in `prevResult` (for CHECK and for DEL's bookkeeping).
    pub fn prev_result_addresses(&self) -> Vec<IpAddr> {
        self.prev_result
            .as_ref()
            .and_then(|v| crate::result::CniResult::from_value(v).ok())
            .map(|r| r.ips.iter().map(|ip| ip.address.addr()).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration Calico's manifests install (calico.yaml), as the
    /// runtime passes it to the plugin.
    const MANIFEST: &str = r#"{
        "cniVersion": "0.3.1",
        "name": "k8s-pod-network",
        "type": "calico",
        "log_level": "info",
        "log_file_path": "/var/log/calico/cni/cni.log",
        "datastore_type": "kubernetes",
        "nodename": "node-1",
        "mtu": 1440,
        "ipam": {"type": "calico-ipam", "assign_ipv4": "true", "assign_ipv6": "false", "ipv4_pools": ["10.244.0.0/16", "default-ipv4-ippool"]},
        "policy": {"type": "k8s"},
        "kubernetes": {"kubeconfig": "/etc/cni/net.d/calico-kubeconfig"},
        "container_settings": {"allow_ip_forwarding": true},
        "feature_control": {"floating_ips": true},
        "some_future_field": {"x": 1}
    }"#;

    #[test]
    fn manifest_config_parses_with_unknown_fields() {
        let conf = NetConf::parse(MANIFEST.as_bytes()).unwrap();
        assert_eq!(conf.version().unwrap(), SpecVersion::V0_3_1);
        assert_eq!(conf.name, "k8s-pod-network");
        assert_eq!(conf.mtu, 1440);
        assert_eq!(conf.ipam.ipam_type, "calico-ipam");
        assert_eq!(conf.assign_families(), (true, false));
        assert_eq!(
            conf.ipam.ipv4_pools,
            vec!["10.244.0.0/16", "default-ipv4-ippool"]
        );
        assert_eq!(conf.policy.policy_type, "k8s");
        assert!(conf.container_settings.allow_ip_forwarding);
        assert!(conf.feature_control.floating_ips);
        conf.validate().unwrap();
    }

    #[test]
    fn etcd_config_parses() {
        let conf = NetConf::parse(
            br#"{"name":"calico","type":"calico","etcd_endpoints":"https://10.0.0.1:2379","etcd_key_file":"/k","etcd_cert_file":"/c","etcd_ca_cert_file":"/ca","ipam":{"type":"calico-ipam","assign_ipv6":true},"nodename_file_optional":true}"#,
        )
        .unwrap();
        assert_eq!(conf.version().unwrap(), SpecVersion::V0_2_0);
        assert_eq!(conf.etcd_endpoints, "https://10.0.0.1:2379");
        assert_eq!(conf.etcd_ca_cert_file, "/ca");
        assert_eq!(conf.assign_families(), (true, true));
        assert!(conf.nodename_file_optional);
    }

    #[test]
    fn wrong_types_name_the_field() {
        for (text, needle) in [
            (
                r#"{"name":"n","mtu":"1500"}"#,
                "field mtu: invalid type: string \"1500\"",
            ),
            (
                r#"{"name":"n","ipam":{"ipv4_pools":[1]}}"#,
                "field ipam.ipv4_pools[0]: invalid type: integer",
            ),
            (
                r#"{"name":"n","ipam":{"assign_ipv4":"yes"}}"#,
                "field ipam.assign_ipv4: expected \"true\" or \"false\", found \"yes\"",
            ),
            (
                r#"{"name": "n", "#,
                "decoding the network configuration: EOF",
            ),
        ] {
            let error = NetConf::parse(text.as_bytes()).unwrap_err();
            assert_eq!(error.code, ErrorCode::Decode, "{text}");
            assert!(error.msg.contains(needle), "{text}: {}", error.msg);
        }
    }

    #[test]
    fn datastore_durability_defaults_to_normal() {
        for (text, expected) in [
            (
                r#"{"name": "n", "ipam": {"type": "x"}}"#,
                Durability::Normal,
            ),
            (
                r#"{"name": "n", "ipam": {"type": "x"}, "datastore_durability": "normal"}"#,
                Durability::Normal,
            ),
            (
                r#"{"name": "n", "ipam": {"type": "x"}, "datastore_durability": "Full"}"#,
                Durability::Full,
            ),
        ] {
            let conf = NetConf::parse(text.as_bytes()).unwrap();
            assert_eq!(conf.embedded_durability().unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn validation_names_what_is_wrong() {
        let base = |patch: &str| {
            let mut value: serde_json::Value = serde_json::from_str(MANIFEST).unwrap();
            let patch: serde_json::Value = serde_json::from_str(patch).unwrap();
            for (k, v) in patch.as_object().unwrap() {
                value[k] = v.clone();
            }
            NetConf::parse(value.to_string().as_bytes()).unwrap()
        };
        for (patch, code, needle) in [
            (
                r#"{"mtu": 70000}"#,
                ErrorCode::InvalidConfig,
                "mtu 70000 is out of range (68-65535)",
            ),
            (
                r#"{"name": "bad name"}"#,
                ErrorCode::InvalidConfig,
                "invalid characters in network name \"bad name\"",
            ),
            (
                r#"{"name": ""}"#,
                ErrorCode::InvalidConfig,
                "missing network name",
            ),
            (
                r#"{"device_type": "tap"}"#,
                ErrorCode::InvalidConfig,
                "unknown device_type \"tap\"",
            ),
            (
                r#"{"device_type": "netkit"}"#,
                ErrorCode::UnsupportedField,
                "device_type: \"netkit\"",
            ),
            (
                r#"{"datastore_durability": "sometimes"}"#,
                ErrorCode::InvalidConfig,
                "unknown datastore_durability \"sometimes\"",
            ),
            (r#"{"ipam": {}}"#, ErrorCode::InvalidConfig, "ipam.type"),
            (
                r#"{"ipam": {"type": "calico-ipam", "assign_ipv4": "false"}}"#,
                ErrorCode::InvalidConfig,
                "no address would be assigned",
            ),
            (
                r#"{"ipam": {"type": "calico-ipam", "ipv4_pools": ["fd00::/64"]}}"#,
                ErrorCode::InvalidConfig,
                "ipam.ipv4_pools entry \"fd00::/64\"",
            ),
            (
                r#"{"ipam": {"type": "host-local", "subnet": "usePodCidr"}}"#,
                ErrorCode::UnsupportedField,
                "ipam.subnet: \"usePodCidr\"",
            ),
            (
                r#"{"ipam": {"type": "host-local", "routes": [{"dst": "nope"}]}}"#,
                ErrorCode::InvalidConfig,
                "dst \"nope\" is not a CIDR",
            ),
        ] {
            let error = base(patch).validate().unwrap_err();
            assert_eq!(error.code, code, "{patch}");
            assert!(error.msg.contains(needle), "{patch}: {}", error.msg);
        }
        let future = base(r#"{"cniVersion": "2.0.0"}"#).version().unwrap_err();
        assert_eq!(future.code, ErrorCode::IncompatibleVersion);
        assert!(future.details.contains("\"2.0.0\""), "{}", future.details);
    }

    #[test]
    fn host_local_routes_replace_the_defaults() {
        let conf = NetConf::parse(
            br#"{"name":"n","ipam":{"type":"host-local","routes":[{"dst":"10.96.0.0/12"},{"dst":"192.168.1.7/24"}]}}"#,
        )
        .unwrap();
        let routes: Vec<String> = conf
            .pod_routes()
            .unwrap()
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(routes, vec!["10.96.0.0/12", "192.168.1.0/24"]);
        let mut with_defaults = conf.clone();
        with_defaults.include_default_routes = true;
        assert_eq!(with_defaults.pod_routes().unwrap().len(), 4);
        let calico = NetConf::parse(br#"{"name":"n","ipam":{"type":"calico-ipam"}}"#).unwrap();
        let defaults: Vec<String> = calico
            .pod_routes()
            .unwrap()
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(defaults, vec!["0.0.0.0/0", "::/0"]);
    }

    #[test]
    fn nodename_and_mtu_follow_calicos_precedence() {
        let mut conf = NetConf::parse(br#"{"name":"n"}"#).unwrap();
        assert_eq!(conf.resolve_nodename(None, "Host-A\n"), "host-a");
        conf.hostname = "old-style".into();
        assert_eq!(conf.resolve_nodename(None, "host-a"), "old-style");
        assert_eq!(
            conf.resolve_nodename(Some("node-from-file\n"), "host-a"),
            "node-from-file"
        );
        conf.nodename = "configured".into();
        assert_eq!(
            conf.resolve_nodename(Some("node-from-file"), "host-a"),
            "configured"
        );
        assert_eq!(conf.nodename_file(), DEFAULT_NODENAME_FILE);

        assert_eq!(conf.resolve_mtu(None).unwrap(), None);
        assert_eq!(conf.resolve_mtu(Some("1450\n")).unwrap(), Some(1450));
        assert!(
            conf.resolve_mtu(Some("big"))
                .unwrap_err()
                .msg
                .contains("\"big\", not a number")
        );
        conf.require_mtu_file = true;
        assert!(
            conf.resolve_mtu(None)
                .unwrap_err()
                .msg
                .contains("require_mtu_file")
        );
        conf.mtu = 9000;
        assert_eq!(conf.resolve_mtu(Some("1450")).unwrap(), Some(9000));
    }

    #[test]
    fn gc_attachments_and_prev_result_parse() {
        let conf = NetConf::parse(
            br#"{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}],"prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.0.0.5/32"}]}}"#,
        )
        .unwrap();
        assert_eq!(
            conf.valid_attachments.unwrap(),
            vec![Attachment {
                container_id: "c1".into(),
                ifname: "eth0".into()
            }]
        );
        let conf = NetConf::parse(
            br#"{"cniVersion":"0.4.0","name":"n","prevResult":{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.5/32"}]}}"#,
        )
        .unwrap();
        assert_eq!(
            conf.prev_result_addresses(),
            vec!["10.0.0.5".parse::<IpAddr>().unwrap()]
        );
    }
}
