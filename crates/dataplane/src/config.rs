//! How the generated ruleset is shaped: table name, families, workload
//! interface prefixes, what happens to workload-to-host traffic, the packet
//! mark bits policy chains communicate with, the log prefix.
//!
//! [`DataplaneConfig::default`] is Calico's default configuration;
//! [`DataplaneConfig::from_felix`] reads the same settings from a
//! `FelixConfiguration` spec, as Calico's agent does.

use std::net::IpAddr;

use calico_model::FelixConfigurationSpec;
use calico_nftables::{Family, TableId};
use calico_policy::program::{Failsafe, ProtoPort};
use ipnet::IpNet;

/// What to do with traffic from a workload to the host itself, once the
/// workload's egress policy has allowed it (Calico's
/// `DefaultEndpointToHostAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointToHostAction {
    /// Drop it: workloads cannot reach the host (Calico's default).
    Drop,
    /// Accept it in the agent's table.
    Accept,
    /// Leave the decision to the host's other rules (host endpoint policy
    /// is not applied to it, as in Calico).
    Return,
}

impl EndpointToHostAction {
    /// Parses Calico's spelling (`Drop`, `Accept`, `Return`, any case).
    pub fn parse(text: &str) -> Option<EndpointToHostAction> {
        match text.to_ascii_uppercase().as_str() {
            "DROP" => Some(EndpointToHostAction::Drop),
            "ACCEPT" => Some(EndpointToHostAction::Accept),
            "RETURN" => Some(EndpointToHostAction::Return),
            _ => None,
        }
    }
}

/// The packet-mark bits policy chains use to report their verdict to the
/// chain that jumped to them (what Calico calls the accept, pass and scratch
/// marks). Each must be a single bit, all different.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Marks {
    /// Set by a policy or profile that allowed the packet.
    pub accept: u32,
    /// Set by a policy whose Pass rule matched: skip the rest of the tier.
    pub pass: u32,
    /// Temporary: collects the alternatives of a Log rule that needs more
    /// than one nft rule.
    pub scratch: u32,
}

impl Marks {
    /// Every bit the agent owns.
    pub fn all(self) -> u32 {
        self.accept | self.pass | self.scratch
    }

    /// Allocates the bits from a mask as Calico does: single bits from the
    /// lowest up, in the order accept, pass, drop (unused here), scratch.
    pub fn from_mask(mask: u32) -> Option<Marks> {
        let mut bits = (0..32).map(|i| 1u32 << i).filter(|b| mask & b != 0);
        let accept = bits.next()?;
        let pass = bits.next()?;
        let _drop = bits.next()?;
        let scratch = bits.next()?;
        Some(Marks {
            accept,
            pass,
            scratch,
        })
    }

    fn valid(self) -> bool {
        let bits = [self.accept, self.pass, self.scratch];
        bits.iter().all(|b| b.count_ones() == 1)
            && self.accept & self.pass == 0
            && self.all().count_ones() == 3
    }
}

/// Calico's default `IptablesMarkMask`.
pub const DEFAULT_MARK_MASK: u32 = 0xffff_0000;

impl Default for Marks {
    fn default() -> Self {
        Marks::from_mask(DEFAULT_MARK_MASK).expect("the default mask has enough bits")
    }
}

/// The generator's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneConfig {
    /// Name of the agent's tables: one `ip` table and one `ip6` table of
    /// this name, as Calico's nftables mode has (rules exist per family).
    pub table_name: String,
    pub ipv4: bool,
    pub ipv6: bool,
    /// Host-side names of workload interfaces start with one of these
    /// (Calico's `InterfacePrefix`, default `cali`).
    pub workload_interface_prefixes: Vec<String>,
    pub endpoint_to_host_action: EndpointToHostAction,
    pub marks: Marks,
    /// Log rules log with this prefix followed by `: ` (Calico's
    /// `LogPrefix`, default `calico-packet`).
    pub log_prefix: String,
    /// Priority of the filter base chains (forward, input, output).
    pub filter_priority: i32,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            table_name: "calico".into(),
            ipv4: true,
            ipv6: true,
            workload_interface_prefixes: vec!["cali".into()],
            endpoint_to_host_action: EndpointToHostAction::Drop,
            marks: Marks::default(),
            log_prefix: "calico-packet".into(),
            filter_priority: 0,
        }
    }
}

/// A FelixConfiguration setting the generator cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("defaultEndpointToHostAction: {value:?} is not one of Drop, Accept, Return")]
    EndpointToHostAction { value: String },
    #[error(
        "iptablesMarkMask: 0x{value:x} leaves fewer than 4 mark bits (accept, pass, drop, scratch); Calico's default is 0xffff0000"
    )]
    MarkMask { value: i64 },
    #[error("interfacePrefix: {value:?} names no prefix")]
    InterfacePrefix { value: String },
    #[error("{field}: {value:?} contains a double quote or a control character")]
    Unquotable { field: &'static str, value: String },
    #[error("{field}[{index}]: protocol {value:?} is not tcp, udp or sctp")]
    FailsafeProtocol {
        field: &'static str,
        index: usize,
        value: String,
    },
    #[error("{field}[{index}]: net {value:?} is not a CIDR or IP address")]
    FailsafeNet {
        field: &'static str,
        index: usize,
        value: String,
    },
}

/// The failsafe ports a FelixConfiguration gives
/// (`failsafeInboundHostPorts`, `failsafeOutboundHostPorts`), over Calico's
/// defaults: what the agent puts in the policy engine's configuration, from
/// which every [`calico_policy::program::Dataplane`] carries them.
pub fn failsafe_from_felix(spec: &FelixConfigurationSpec) -> Result<Failsafe, ConfigError> {
    let defaults = Failsafe::default();
    let convert = |field: &'static str,
                   list: &Option<Vec<calico_model::felix::ProtoPort>>,
                   default: Vec<ProtoPort>| {
        let Some(list) = list else {
            return Ok(default);
        };
        list.iter()
            .enumerate()
            .map(|(index, p)| {
                let protocol = match p.protocol.to_ascii_lowercase().as_str() {
                    "" | "tcp" => 6,
                    "udp" => 17,
                    "sctp" => 132,
                    _ => {
                        return Err(ConfigError::FailsafeProtocol {
                            field,
                            index,
                            value: p.protocol.clone(),
                        });
                    }
                };
                let net = if p.net.is_empty() {
                    None
                } else {
                    let parsed = p
                        .net
                        .parse::<IpNet>()
                        .map(|n| n.trunc())
                        .or_else(|_| p.net.parse::<IpAddr>().map(IpNet::from));
                    Some(parsed.map_err(|_| ConfigError::FailsafeNet {
                        field,
                        index,
                        value: p.net.clone(),
                    })?)
                };
                Ok(ProtoPort {
                    protocol,
                    port: p.port,
                    net,
                })
            })
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(Failsafe {
        inbound: convert(
            "failsafeInboundHostPorts",
            &spec.failsafe_inbound_host_ports,
            defaults.inbound,
        )?,
        outbound: convert(
            "failsafeOutboundHostPorts",
            &spec.failsafe_outbound_host_ports,
            defaults.outbound,
        )?,
    })
}

impl DataplaneConfig {
    /// The tables the generator fills, for the reconciler to own.
    pub fn tables(&self) -> Vec<TableId> {
        self.families()
            .into_iter()
            .map(|f| TableId::new(f, self.table_name.clone()))
            .collect()
    }

    pub(crate) fn families(&self) -> Vec<Family> {
        let mut out = Vec::new();
        if self.ipv4 {
            out.push(Family::Ip);
        }
        if self.ipv6 {
            out.push(Family::Ip6);
        }
        out
    }

    /// Whether the mark bits are usable (single, distinct bits).
    pub fn marks_valid(&self) -> bool {
        self.marks.valid()
    }

    /// The settings a FelixConfiguration gives, over Calico's defaults.
    /// `ipv6Support` defaults to true, as in Calico.
    pub fn from_felix(spec: &FelixConfigurationSpec) -> Result<DataplaneConfig, ConfigError> {
        let mut config = DataplaneConfig::default();
        if let Some(v) = &spec.default_endpoint_to_host_action {
            config.endpoint_to_host_action = EndpointToHostAction::parse(v)
                .ok_or_else(|| ConfigError::EndpointToHostAction { value: v.clone() })?;
        }
        if let Some(mask) = spec.iptables_mark_mask {
            config.marks = u32::try_from(mask)
                .ok()
                .and_then(Marks::from_mask)
                .ok_or(ConfigError::MarkMask { value: mask })?;
        }
        if let Some(v) = &spec.interface_prefix {
            let prefixes: Vec<String> = v
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect();
            if prefixes.is_empty() {
                return Err(ConfigError::InterfacePrefix { value: v.clone() });
            }
            if let Some(bad) = prefixes.iter().find(|p| !quotable(p)) {
                return Err(ConfigError::Unquotable {
                    field: "interfacePrefix",
                    value: bad.clone(),
                });
            }
            config.workload_interface_prefixes = prefixes;
        }
        if let Some(v) = &spec.log_prefix {
            if !quotable(v) {
                return Err(ConfigError::Unquotable {
                    field: "logPrefix",
                    value: v.clone(),
                });
            }
            config.log_prefix = v.clone();
        }
        if let Some(v6) = spec.ipv6_support {
            config.ipv6 = v6;
        }
        Ok(config)
    }
}

fn quotable(s: &str) -> bool {
    !s.chars().any(|c| c == '"' || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_follow_calicos_allocation() {
        assert_eq!(
            Marks::default(),
            Marks {
                accept: 0x1_0000,
                pass: 0x2_0000,
                scratch: 0x8_0000
            }
        );
        assert_eq!(
            Marks::from_mask(0x0f0),
            Some(Marks {
                accept: 0x10,
                pass: 0x20,
                scratch: 0x80
            })
        );
        assert_eq!(Marks::from_mask(0x7), None);
        assert!(DataplaneConfig::default().marks_valid());
        let mut bad = DataplaneConfig::default();
        bad.marks.pass = bad.marks.accept;
        assert!(!bad.marks_valid());
    }

    #[test]
    fn felix_settings_table() {
        let spec = |f: &dyn Fn(&mut FelixConfigurationSpec)| {
            let mut s = FelixConfigurationSpec::default();
            f(&mut s);
            DataplaneConfig::from_felix(&s)
        };
        assert_eq!(spec(&|_| {}), Ok(DataplaneConfig::default()));
        let c = spec(&|s| {
            s.default_endpoint_to_host_action = Some("Accept".into());
            s.interface_prefix = Some("cali, tap".into());
            s.log_prefix = Some("pkt".into());
            s.ipv6_support = Some(false);
            s.iptables_mark_mask = Some(0xff00);
        })
        .unwrap();
        assert_eq!(c.endpoint_to_host_action, EndpointToHostAction::Accept);
        assert_eq!(c.workload_interface_prefixes, vec!["cali", "tap"]);
        assert_eq!(c.log_prefix, "pkt");
        assert_eq!(c.tables(), vec![TableId::new(Family::Ip, "calico")]);
        assert_eq!(c.marks.accept, 0x100);

        assert!(matches!(
            spec(&|s| s.default_endpoint_to_host_action = Some("Reject".into())),
            Err(ConfigError::EndpointToHostAction { .. })
        ));
        assert!(matches!(
            spec(&|s| s.iptables_mark_mask = Some(0x3)),
            Err(ConfigError::MarkMask { .. })
        ));
        assert!(matches!(
            spec(&|s| s.interface_prefix = Some(" , ".into())),
            Err(ConfigError::InterfacePrefix { .. })
        ));
        assert!(matches!(
            spec(&|s| s.log_prefix = Some("a\"b".into())),
            Err(ConfigError::Unquotable { .. })
        ));
    }

    #[test]
    fn failsafe_ports_from_felix() {
        use calico_model::felix::ProtoPort as Felix;
        let mut spec = FelixConfigurationSpec::default();
        assert_eq!(failsafe_from_felix(&spec), Ok(Failsafe::default()));
        spec.failsafe_inbound_host_ports = Some(vec![
            Felix {
                protocol: "TCP".into(),
                port: 22,
                net: "10.0.0.0/8".into(),
            },
            Felix {
                protocol: "udp".into(),
                port: 68,
                net: String::new(),
            },
        ]);
        spec.failsafe_outbound_host_ports = Some(Vec::new());
        let f = failsafe_from_felix(&spec).unwrap();
        assert_eq!(
            f.inbound,
            vec![
                ProtoPort {
                    protocol: 6,
                    port: 22,
                    net: Some("10.0.0.0/8".parse().unwrap())
                },
                ProtoPort {
                    protocol: 17,
                    port: 68,
                    net: None
                }
            ]
        );
        assert!(f.outbound.is_empty());
        spec.failsafe_outbound_host_ports = Some(vec![Felix {
            protocol: "icmp".into(),
            port: 1,
            net: String::new(),
        }]);
        assert_eq!(
            failsafe_from_felix(&spec),
            Err(ConfigError::FailsafeProtocol {
                field: "failsafeOutboundHostPorts",
                index: 0,
                value: "icmp".into()
            })
        );
    }
}
