//! The CNI result type: one model (the 1.x shape) read from and written to
//! every specification version.
//!
//! - 1.0.0 and 1.1.0: `interfaces` (with `mtu`, `socketPath`, `pciID`),
//!   `ips` with an `interface` index, `routes`, `dns`;
//! - 0.3.0 to 0.4.0: the same, but every IP carries `"version": "4"|"6"` and
//!   interfaces have no `mtu`, `socketPath` or `pciID`;
//! - 0.1.0 and 0.2.0: one `ip4` and one `ip6` object, each with its routes.
//!
//! Output keeps the field order and four-space indentation of the reference
//! Go implementation, so results look the same to a person as Calico's.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::version::SpecVersion;

/// An ADD result (also what a delegated IPAM plugin returns, without the
/// interfaces).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    #[serde(
        rename = "socketPath",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub socket_path: Option<String>,
    #[serde(rename = "pciID", default, skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<String>,
}

/// One address. `address` keeps the host bits and the prefix the plugin
/// chose (`10.1.0.5/16`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// Index into [`CniResult::interfaces`].
    pub interface: Option<usize>,
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNetText,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u32>,
}

impl Route {
    pub fn to(dst: IpNet) -> Self {
        Route {
            dst: IpNetText(dst),
            ..Default::default()
        }
    }
}

/// A prefix written the way Go's `net.IPNet` prints it: host bits kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetText(pub IpNet);

impl Default for IpNetText {
    fn default() -> Self {
        IpNetText(IpNet::V4(Default::default()))
    }
}

impl Serialize for IpNetText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for IpNetText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map(IpNetText)
            .map_err(|_| serde::de::Error::custom(format!("invalid CIDR address: {text}")))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self == &Dns::default()
    }
}

/// Why a result could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    #[error("decoding a CNI result")]
    Decode {
        #[source]
        source: serde_json::Error,
    },
    #[error("result has cniVersion {0:?}, which is not a supported CNI version")]
    Version(String),
    #[error("a CNI {version} result needs at least one IP address")]
    NoAddressForLegacy { version: SpecVersion },
}

// The wire shapes, one per family of versions, with fields in the order the
// reference implementation writes them.

#[derive(Serialize, Deserialize)]
struct WireCurrent {
    #[serde(
        rename = "cniVersion",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ips: Vec<WireIp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
    #[serde(default)]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct WireIp {
    /// Only in 0.3.x and 0.4.0 results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
    address: IpNetText,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
}

#[derive(Serialize, Deserialize)]
struct WireLegacy {
    #[serde(
        rename = "cniVersion",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    cni_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip4: Option<WireLegacyIp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip6: Option<WireLegacyIp>,
    #[serde(default)]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct WireLegacyIp {
    ip: IpNetText,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<LegacyRoute>,
}

#[derive(Serialize, Deserialize)]
struct LegacyRoute {
    dst: IpNetText,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gw: Option<IpAddr>,
}

impl CniResult {
    /// Reads a result of any supported version (a `prevResult`, or what a
    /// delegated IPAM plugin printed). A result without `cniVersion` is read
    /// by its shape.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, ResultError> {
        let version = value
            .get("cniVersion")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let legacy = if version.is_empty() {
            value.get("ip4").is_some() || value.get("ip6").is_some()
        } else {
            version
                .parse::<SpecVersion>()
                .map_err(|_| ResultError::Version(version.to_string()))?
                .has_legacy_result()
        };
        if legacy {
            let wire: WireLegacy = serde_json::from_value(value.clone())
                .map_err(|source| ResultError::Decode { source })?;
            let mut result = CniResult {
                dns: wire.dns,
                ..Default::default()
            };
            for ip in [wire.ip4, wire.ip6].into_iter().flatten() {
                result.ips.push(IpConfig {
                    interface: None,
                    address: ip.ip.0,
                    gateway: ip.gateway,
                });
                result.routes.extend(ip.routes.into_iter().map(|r| Route {
                    dst: r.dst,
                    gw: r.gw,
                    ..Default::default()
                }));
            }
            return Ok(result);
        }
        let wire: WireCurrent = serde_json::from_value(value.clone())
            .map_err(|source| ResultError::Decode { source })?;
        Ok(CniResult {
            interfaces: wire.interfaces,
            ips: wire
                .ips
                .into_iter()
                .map(|ip| IpConfig {
                    interface: ip.interface,
                    address: ip.address.0,
                    gateway: ip.gateway,
                })
                .collect(),
            routes: wire.routes,
            dns: wire.dns,
        })
    }

    /// Reads a result from bytes (see [`CniResult::from_value`]).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ResultError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|source| ResultError::Decode { source })?;
        Self::from_value(&value)
    }

    /// The result as JSON in the shape of `version`.
    pub fn to_value(&self, version: SpecVersion) -> Result<serde_json::Value, ResultError> {
        let value = if version.has_legacy_result() {
            serde_json::to_value(self.legacy(version)?)
        } else {
            let carry_version = version.ip_entries_carry_version();
            serde_json::to_value(WireCurrent {
                cni_version: version.to_string(),
                interfaces: self
                    .interfaces
                    .iter()
                    .map(|i| {
                        if carry_version {
                            Interface {
                                mtu: None,
                                socket_path: None,
                                pci_id: None,
                                ..i.clone()
                            }
                        } else {
                            i.clone()
                        }
                    })
                    .collect(),
                ips: self
                    .ips
                    .iter()
                    .map(|ip| WireIp {
                        version: carry_version.then(|| {
                            if ip.address.addr().is_ipv4() {
                                "4"
                            } else {
                                "6"
                            }
                            .to_string()
                        }),
                        interface: ip.interface,
                        address: IpNetText(ip.address),
                        gateway: ip.gateway,
                    })
                    .collect(),
                routes: self.routes.clone(),
                dns: self.dns.clone(),
            })
        };
        value.map_err(|source| ResultError::Decode { source })
    }

    /// The result as the text a plugin prints: indented by four spaces.
    pub fn to_json(&self, version: SpecVersion) -> Result<String, ResultError> {
        Ok(pretty(&self.to_value(version)?))
    }

    fn legacy(&self, version: SpecVersion) -> Result<WireLegacy, ResultError> {
        let first = |v4: bool| {
            self.ips
                .iter()
                .find(|ip| ip.address.addr().is_ipv4() == v4)
                .map(|ip| WireLegacyIp {
                    ip: IpNetText(ip.address),
                    gateway: ip.gateway,
                    routes: self
                        .routes
                        .iter()
                        .filter(|r| r.dst.0.addr().is_ipv4() == v4)
                        .map(|r| LegacyRoute {
                            dst: r.dst,
                            gw: r.gw,
                        })
                        .collect(),
                })
        };
        let (ip4, ip6) = (first(true), first(false));
        if ip4.is_none() && ip6.is_none() {
            return Err(ResultError::NoAddressForLegacy { version });
        }
        Ok(WireLegacy {
            cni_version: version.to_string(),
            ip4,
            ip6,
            dns: self.dns.clone(),
        })
    }
}

/// JSON with four-space indentation, as the reference plugins print it.
pub fn pretty<T: Serialize>(value: &T) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    value
        .serialize(&mut serializer)
        .expect("serialising to memory cannot fail");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: "cali12345678901".into(),
                    ..Default::default()
                },
                Interface {
                    name: "eth0".into(),
                    mac: Some("aa:bb:cc:dd:ee:ff".into()),
                    mtu: Some(1440),
                    sandbox: Some("/var/run/netns/cni-1".into()),
                    ..Default::default()
                },
            ],
            ips: vec![
                IpConfig {
                    interface: Some(1),
                    address: "10.244.0.5/32".parse().unwrap(),
                    gateway: None,
                },
                IpConfig {
                    interface: Some(1),
                    address: "fd00::5/128".parse().unwrap(),
                    gateway: None,
                },
            ],
            routes: vec![],
            dns: Dns::default(),
        }
    }

    #[test]
    fn current_versions_have_no_ip_version_field() {
        let text = sample().to_json(SpecVersion::V1_0_0).unwrap();
        assert!(!text.contains("\"version\""), "{text}");
        assert!(text.contains("\"mtu\": 1440"), "{text}");
        assert!(
            text.starts_with("{\n    \"cniVersion\": \"1.0.0\",\n    \"interfaces\""),
            "{text}"
        );
        // Go writes an empty dns object.
        assert!(text.contains("\"dns\": {}"), "{text}");
    }

    #[test]
    fn pre_1_0_versions_carry_ip_versions_and_drop_interface_mtu() {
        let value = sample().to_value(SpecVersion::V0_3_1).unwrap();
        assert_eq!(value["ips"][0]["version"], "4");
        assert_eq!(value["ips"][1]["version"], "6");
        assert_eq!(value["ips"][1]["interface"], 1);
        assert!(value["interfaces"][1].get("mtu").is_none());
        assert_eq!(value["interfaces"][1]["sandbox"], "/var/run/netns/cni-1");
    }

    #[test]
    fn legacy_versions_keep_the_first_address_of_each_family() {
        let mut result = sample();
        result.ips.push(IpConfig {
            interface: Some(1),
            address: "10.244.0.6/32".parse().unwrap(),
            gateway: None,
        });
        result.routes.push(Route::to("0.0.0.0/0".parse().unwrap()));
        let value = result.to_value(SpecVersion::V0_2_0).unwrap();
        assert_eq!(value["ip4"]["ip"], "10.244.0.5/32");
        assert_eq!(value["ip4"]["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(value["ip6"]["ip"], "fd00::5/128");
        assert!(value["ip6"].get("routes").is_none());
        let empty = CniResult::default()
            .to_value(SpecVersion::V0_1_0)
            .unwrap_err();
        assert_eq!(
            empty.to_string(),
            "a CNI 0.1.0 result needs at least one IP address"
        );
    }

    #[test]
    fn each_version_round_trips() {
        for version in SpecVersion::ALL {
            let value = sample().to_value(version).unwrap();
            let back = CniResult::from_value(&value).unwrap();
            let again = back.to_value(version).unwrap();
            assert_eq!(value, again, "{version}");
        }
    }

    #[test]
    fn garbage_is_a_decode_error_naming_the_problem() {
        let bad = serde_json::json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.300/24"}]});
        let error = CniResult::from_value(&bad).unwrap_err();
        assert!(matches!(error, ResultError::Decode { .. }));
        assert!(
            std::error::Error::source(&error)
                .unwrap()
                .to_string()
                .contains("invalid CIDR address: 10.0.0.300/24")
        );
        let future = serde_json::json!({"cniVersion": "9.9.9"});
        assert!(
            matches!(CniResult::from_value(&future), Err(ResultError::Version(v)) if v == "9.9.9")
        );
    }
}
