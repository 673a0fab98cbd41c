//! The agent's configuration, resolved the way Calico's agent (what Calico
//! calls Felix) resolves it: each parameter comes from the highest-priority
//! source that gives it a valid value, in the order
//!
//! 1. environment variables `FELIX_<PARAM>` (any case),
//! 2. the FelixConfiguration named `node.<nodename>` (per host),
//! 3. the FelixConfiguration named `default` (global),
//! 4. Calico's built-in default.
//!
//! A value that does not parse is logged with its source and skipped, so
//! the next source (ultimately the default) applies: a typo in a
//! FelixConfiguration never takes the agent down. Parameter names match
//! case-insensitively, so `FELIX_HEALTHPORT`, `healthPort` and `HealthPort`
//! are one parameter.
//!
//! Pure: no I/O. [`Layers`] holds the raw sources; [`Layers::resolve`]
//! gives a [`FelixConfig`] and the problems found.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use calico_dataplane::{ConfigError as DataplaneConfigError, DataplaneConfig};
use calico_model::FelixConfigurationSpec;
use calico_model::felix::ProtoPort;
use calico_policy::program::Failsafe;
use serde_json::Value;

use crate::env::Env;

/// Where a parameter's value came from, lowest priority first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Default,
    DatastoreGlobal,
    DatastorePerHost,
    Environment,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Default => "default",
            Source::DatastoreGlobal => "FelixConfiguration default",
            Source::DatastorePerHost => "FelixConfiguration node.<name>",
            Source::Environment => "environment",
        })
    }
}

/// A raw value: text from the environment, JSON from a FelixConfiguration.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    Text(String),
    Json(Value),
}

impl fmt::Display for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Raw::Text(t) => write!(f, "{t:?}"),
            Raw::Json(v) => write!(f, "{v}"),
        }
    }
}

/// A value that was given but could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub param: &'static str,
    pub source: Source,
    pub value: String,
    pub reason: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} from {}: {} is not valid ({}); using the next source or the default",
            self.param, self.source, self.value, self.reason
        )
    }
}

/// The log levels Calico's `logSeverityScreen` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogSeverity {
    Trace,
    Debug,
    Info,
    Warning,
    Error,
    Fatal,
}

impl LogSeverity {
    pub fn parse(text: &str) -> Option<LogSeverity> {
        Some(match text.trim().to_ascii_uppercase().as_str() {
            "TRACE" => LogSeverity::Trace,
            "DEBUG" => LogSeverity::Debug,
            "INFO" => LogSeverity::Info,
            "WARNING" | "WARN" => LogSeverity::Warning,
            "ERROR" => LogSeverity::Error,
            "FATAL" | "PANIC" => LogSeverity::Fatal,
            _ => return None,
        })
    }

    /// The `tracing` filter directive for this level.
    pub fn directive(self) -> &'static str {
        match self {
            LogSeverity::Trace => "trace",
            LogSeverity::Debug => "debug",
            LogSeverity::Info => "info",
            LogSeverity::Warning => "warn",
            LogSeverity::Error | LogSeverity::Fatal => "error",
        }
    }
}

/// The parameters the agent uses, with Calico's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FelixConfig {
    pub log_severity_screen: LogSeverity,
    pub health_enabled: bool,
    pub health_host: String,
    pub health_port: u16,
    pub prometheus_metrics_enabled: bool,
    /// Empty: every address.
    pub prometheus_metrics_host: String,
    pub prometheus_metrics_port: u16,
    pub failsafe_inbound_host_ports: Vec<ProtoPort>,
    pub failsafe_outbound_host_ports: Vec<ProtoPort>,
    /// `DROP`, `RETURN` or `ACCEPT`.
    pub default_endpoint_to_host_action: String,
    /// Comma-separated prefixes of workload interface names.
    pub interface_prefix: String,
    /// Zero: no periodic route resync.
    pub route_refresh_interval: Duration,
    pub iptables_refresh_interval: Duration,
    pub nftables_refresh_interval: Duration,
    pub ipv6_support: bool,
    pub iptables_mark_mask: u32,
    pub log_prefix: String,
    /// The protocol number on workload routes (Calico's default 3, `boot`).
    pub device_route_protocol: u8,
    /// Which source each parameter came from (parameters at their default
    /// are absent).
    pub sources: BTreeMap<&'static str, Source>,
}

fn default_ports(text: &str) -> Vec<ProtoPort> {
    parse_port_list(text).expect("Calico's default port list parses")
}

impl Default for FelixConfig {
    fn default() -> Self {
        FelixConfig {
            log_severity_screen: LogSeverity::Info,
            health_enabled: false,
            health_host: "localhost".into(),
            health_port: 9099,
            prometheus_metrics_enabled: false,
            prometheus_metrics_host: String::new(),
            prometheus_metrics_port: 9091,
            failsafe_inbound_host_ports: default_ports(
                "tcp:22,udp:68,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667",
            ),
            failsafe_outbound_host_ports: default_ports(
                "udp:53,udp:67,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667",
            ),
            default_endpoint_to_host_action: "DROP".into(),
            interface_prefix: "cali".into(),
            route_refresh_interval: Duration::from_secs(90),
            iptables_refresh_interval: Duration::from_secs(180),
            nftables_refresh_interval: Duration::from_secs(180),
            ipv6_support: true,
            iptables_mark_mask: 0xffff_0000,
            log_prefix: "calico-packet".into(),
            device_route_protocol: 3,
            sources: BTreeMap::new(),
        }
    }
}

impl FelixConfig {
    /// How often the agent re-reads its tables and puts back what was
    /// changed behind its back: `nftablesRefreshInterval`, or
    /// `iptablesRefreshInterval` when only that one was set (so existing
    /// configurations keep their meaning). `None`: never.
    pub fn table_refresh_interval(&self) -> Option<Duration> {
        let nft_set = self.sources.contains_key("NftablesRefreshInterval");
        let ipt_set = self.sources.contains_key("IptablesRefreshInterval");
        let interval = if ipt_set && !nft_set {
            self.iptables_refresh_interval
        } else {
            self.nftables_refresh_interval
        };
        (!interval.is_zero()).then_some(interval)
    }

    /// How often routes are re-read and repaired; `None`: never.
    pub fn route_refresh(&self) -> Option<Duration> {
        (!self.route_refresh_interval.is_zero()).then_some(self.route_refresh_interval)
    }

    /// The FelixConfiguration spec the dataplane generator reads its
    /// settings from.
    fn generator_spec(&self) -> FelixConfigurationSpec {
        FelixConfigurationSpec {
            default_endpoint_to_host_action: Some(self.default_endpoint_to_host_action.clone()),
            iptables_mark_mask: Some(i64::from(self.iptables_mark_mask)),
            interface_prefix: Some(self.interface_prefix.clone()),
            log_prefix: Some(self.log_prefix.clone()),
            ipv6_support: Some(self.ipv6_support),
            failsafe_inbound_host_ports: Some(self.failsafe_inbound_host_ports.clone()),
            failsafe_outbound_host_ports: Some(self.failsafe_outbound_host_ports.clone()),
            ..FelixConfigurationSpec::default()
        }
    }

    /// The ruleset generator's settings.
    pub fn dataplane(&self) -> Result<DataplaneConfig, DataplaneConfigError> {
        DataplaneConfig::from_felix(&self.generator_spec())
    }

    /// The failsafe ports host endpoints always allow.
    pub fn failsafe(&self) -> Result<Failsafe, DataplaneConfigError> {
        calico_dataplane::failsafe_from_felix(&self.generator_spec())
    }

    /// The workload interface prefixes (`interfacePrefix`, comma
    /// separated).
    pub fn interface_prefixes(&self) -> Vec<String> {
        self.interface_prefix
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect()
    }
}

/// The raw values of every source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layers {
    /// Lower-cased parameter name → value, per source.
    layers: BTreeMap<Source, BTreeMap<String, Raw>>,
}

impl Layers {
    /// Only the `FELIX_*` environment variables.
    pub fn from_env(env: &Env) -> Layers {
        let mut layers = Layers::default();
        let vars = env
            .iter()
            .filter_map(|(k, v)| {
                let lower = k.to_ascii_lowercase();
                let name = lower.strip_prefix("felix_")?;
                (!name.is_empty()).then(|| (name.to_owned(), Raw::Text(v.to_owned())))
            })
            .collect();
        layers.layers.insert(Source::Environment, vars);
        layers
    }

    /// Replaces the values from the global (`default`) FelixConfiguration;
    /// `None` when it does not exist.
    pub fn set_global(&mut self, spec: Option<&FelixConfigurationSpec>) {
        self.set(Source::DatastoreGlobal, spec);
    }

    /// Replaces the values from this node's (`node.<name>`)
    /// FelixConfiguration.
    pub fn set_per_host(&mut self, spec: Option<&FelixConfigurationSpec>) {
        self.set(Source::DatastorePerHost, spec);
    }

    fn set(&mut self, source: Source, spec: Option<&FelixConfigurationSpec>) {
        let values = spec
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| match v {
                Value::Object(map) => Some(map),
                _ => None,
            })
            .into_iter()
            .flatten()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.to_ascii_lowercase(), Raw::Json(v)))
            .collect();
        self.layers.insert(source, values);
    }

    /// Every parameter from its highest-priority valid source.
    pub fn resolve(&self) -> (FelixConfig, Vec<ConfigProblem>) {
        let mut config = FelixConfig::default();
        let mut problems = Vec::new();
        for param in PARAMS {
            let key = param.name.to_ascii_lowercase();
            for (source, values) in self.layers.iter().rev() {
                let Some(raw) = values.get(&key) else {
                    continue;
                };
                match (param.apply)(&mut config, raw) {
                    Ok(()) => {
                        config.sources.insert(param.name, *source);
                        break;
                    }
                    Err(reason) => problems.push(ConfigProblem {
                        param: param.name,
                        source: *source,
                        value: raw.to_string(),
                        reason,
                    }),
                }
            }
        }
        (config, problems)
    }
}

/// One parameter: Calico's name and how a raw value sets it.
struct Param {
    name: &'static str,
    apply: fn(&mut FelixConfig, &Raw) -> Result<(), String>,
}

macro_rules! params {
    ($($name:literal => |$c:ident, $raw:ident| $body:expr),* $(,)?) => {
        const PARAMS: &[Param] = &[
            $(Param { name: $name, apply: |$c: &mut FelixConfig, $raw: &Raw| { $body; Ok(()) } },)*
        ];
    };
}

params! {
    "LogSeverityScreen" => |c, raw| c.log_severity_screen = LogSeverity::parse(&text(raw)?)
        .ok_or("expected one of TRACE, DEBUG, INFO, WARNING, ERROR, FATAL")?,
    "HealthEnabled" => |c, raw| c.health_enabled = boolean(raw)?,
    "HealthHost" => |c, raw| c.health_host = text(raw)?,
    "HealthPort" => |c, raw| c.health_port = port(raw)?,
    "PrometheusMetricsEnabled" => |c, raw| c.prometheus_metrics_enabled = boolean(raw)?,
    "PrometheusMetricsHost" => |c, raw| c.prometheus_metrics_host = text(raw)?,
    "PrometheusMetricsPort" => |c, raw| c.prometheus_metrics_port = port(raw)?,
    "FailsafeInboundHostPorts" => |c, raw| c.failsafe_inbound_host_ports = port_list(raw)?,
    "FailsafeOutboundHostPorts" => |c, raw| c.failsafe_outbound_host_ports = port_list(raw)?,
    "DefaultEndpointToHostAction" => |c, raw| c.default_endpoint_to_host_action =
        one_of(raw, &["DROP", "RETURN", "ACCEPT"])?,
    "InterfacePrefix" => |c, raw| c.interface_prefix = non_empty(raw)?,
    "RouteRefreshInterval" => |c, raw| c.route_refresh_interval = seconds(raw)?,
    "IptablesRefreshInterval" => |c, raw| c.iptables_refresh_interval = seconds(raw)?,
    "NftablesRefreshInterval" => |c, raw| c.nftables_refresh_interval = seconds(raw)?,
    "Ipv6Support" => |c, raw| c.ipv6_support = boolean(raw)?,
    "IptablesMarkMask" => |c, raw| c.iptables_mark_mask = mark_mask(raw)?,
    "LogPrefix" => |c, raw| c.log_prefix = text(raw)?,
    "DeviceRouteProtocol" => |c, raw| c.device_route_protocol = u8::try_from(integer(raw)?)
        .map_err(|_| "expected a route protocol number 0-255".to_string())?,
}

/// `"none"` (any case) in the environment: the parameter's zero value.
fn is_none(raw: &Raw) -> bool {
    matches!(raw, Raw::Text(t) if t.trim().eq_ignore_ascii_case("none"))
}

fn text(raw: &Raw) -> Result<String, String> {
    match raw {
        _ if is_none(raw) => Ok(String::new()),
        Raw::Text(t) => Ok(t.trim().to_owned()),
        Raw::Json(Value::String(s)) => Ok(s.clone()),
        Raw::Json(v) => Err(format!("expected a string, found {v}")),
    }
}

fn non_empty(raw: &Raw) -> Result<String, String> {
    let t = text(raw)?;
    if t.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(t)
}

fn one_of(raw: &Raw, allowed: &[&str]) -> Result<String, String> {
    let t = text(raw)?.to_ascii_uppercase();
    if allowed.contains(&t.as_str()) {
        Ok(t)
    } else {
        Err(format!("expected one of {}", allowed.join(", ")))
    }
}

fn boolean(raw: &Raw) -> Result<bool, String> {
    match raw {
        _ if is_none(raw) => Ok(false),
        Raw::Json(Value::Bool(b)) => Ok(*b),
        Raw::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "y" | "t" => Ok(true),
            "false" | "0" | "no" | "n" | "f" | "" => Ok(false),
            _ => Err("expected true or false".into()),
        },
        Raw::Json(v) => Err(format!("expected true or false, found {v}")),
    }
}

fn integer(raw: &Raw) -> Result<i64, String> {
    match raw {
        _ if is_none(raw) => Ok(0),
        Raw::Json(Value::Number(n)) => n.as_i64().ok_or_else(|| format!("{n} is not an integer")),
        Raw::Text(t) => t
            .trim()
            .parse()
            .map_err(|_| format!("{t:?} is not an integer")),
        Raw::Json(v) => Err(format!("expected an integer, found {v}")),
    }
}

fn port(raw: &Raw) -> Result<u16, String> {
    let n = integer(raw)?;
    u16::try_from(n).map_err(|_| format!("{n} is not a port (0-65535)"))
}

/// Seconds as Calico's environment gives them (`"90"`, `"0.5"`), or a Go
/// duration as FelixConfiguration stores them (`"90s"`).
fn seconds(raw: &Raw) -> Result<Duration, String> {
    let from_secs = |s: f64| {
        if s.is_finite() && s >= 0.0 {
            Ok(Duration::from_secs_f64(s))
        } else {
            Err(format!("{s} is not a non-negative number of seconds"))
        }
    };
    match raw {
        _ if is_none(raw) => Ok(Duration::ZERO),
        Raw::Json(Value::Number(n)) => from_secs(n.as_f64().unwrap_or(-1.0)),
        Raw::Text(t) | Raw::Json(Value::String(t)) => {
            let t = t.trim();
            match t.parse::<f64>() {
                Ok(s) => from_secs(s),
                Err(_) => calico_model::duration::go_duration(t)
                    .ok_or_else(|| format!("{t:?} is neither seconds nor a duration like 90s")),
            }
        }
        Raw::Json(v) => Err(format!("expected a duration, found {v}")),
    }
}

fn mark_mask(raw: &Raw) -> Result<u32, String> {
    let n = match raw {
        Raw::Text(t) => {
            let t = t.trim();
            match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                Some(hex) => {
                    i64::from_str_radix(hex, 16).map_err(|_| format!("{t:?} is not hex"))?
                }
                None => integer(raw)?,
            }
        }
        Raw::Json(_) => integer(raw)?,
    };
    match u32::try_from(n) {
        Ok(mask) if mask != 0 => Ok(mask),
        _ => Err(format!("{n} is not a non-zero 32-bit mask")),
    }
}

fn port_list(raw: &Raw) -> Result<Vec<ProtoPort>, String> {
    match raw {
        _ if is_none(raw) => Ok(Vec::new()),
        Raw::Text(t) => parse_port_list(t),
        Raw::Json(v) => serde_json::from_value(v.clone()).map_err(|e| e.to_string()),
    }
}

/// Calico's port list: `<port>`, `<protocol>:<port>` or
/// `<protocol>:<net>:<port>`, comma separated, an IPv6 net in brackets
/// (`tcp:[fd00::/64]:22`); the protocol defaults to tcp.
pub fn parse_port_list(text: &str) -> Result<Vec<ProtoPort>, String> {
    let mut out = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let mut rest = entry.to_owned();
        let mut net = String::new();
        if let (Some(start), Some(end)) = (rest.find('['), rest.find("]:")) {
            if start < end {
                net = rest[start + 1..end].to_owned();
                rest = format!("{}{}", &rest[..start], &rest[end + 2..]);
            }
        }
        let parts: Vec<&str> = rest.split(':').collect();
        let (protocol, port) = match parts.as_slice() {
            [port] => ("tcp".to_owned(), *port),
            [protocol, port] => (protocol.to_ascii_lowercase(), *port),
            [protocol, n, port] => {
                net = (*n).to_owned();
                (protocol.to_ascii_lowercase(), *port)
            }
            _ => {
                return Err(format!(
                    "{entry:?}: expected <protocol>:<net>:<port>, <protocol>:<port> or <port>"
                ));
            }
        };
        if protocol != "tcp" && protocol != "udp" {
            return Err(format!("{entry:?}: unknown protocol {protocol:?}"));
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("{entry:?}: ports are integers 0-65535"))?;
        out.push(ProtoPort {
            protocol,
            port,
            net,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: Value) -> FelixConfigurationSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn defaults_are_calicos() {
        let (c, problems) = Layers::default().resolve();
        assert!(problems.is_empty());
        assert_eq!(c, FelixConfig::default());
        assert_eq!(c.health_port, 9099);
        assert_eq!(c.prometheus_metrics_port, 9091);
        assert_eq!(c.failsafe_inbound_host_ports.len(), 9);
        assert_eq!(c.failsafe_inbound_host_ports[1].protocol, "udp");
        assert_eq!(c.failsafe_inbound_host_ports[1].port, 68);
        assert_eq!(c.table_refresh_interval(), Some(Duration::from_secs(180)));
        assert_eq!(c.route_refresh(), Some(Duration::from_secs(90)));
        let dp = c.dataplane().unwrap();
        assert_eq!(dp, DataplaneConfig::default());
        assert_eq!(c.failsafe().unwrap(), Failsafe::default());
    }

    #[test]
    fn precedence_is_env_then_host_then_global() {
        let env = Env::from_pairs([
            ("FELIX_HEALTHPORT", "9200"),
            ("felix_LogSeverityScreen", "debug"),
            ("OTHER", "x"),
        ]);
        let mut layers = Layers::from_env(&env);
        layers.set_global(Some(&spec(serde_json::json!({
            "healthPort": 9100, "logSeverityScreen": "Warning",
            "ipv6Support": false, "routeRefreshInterval": "30s",
            "defaultEndpointToHostAction": "Accept"
        }))));
        layers.set_per_host(Some(&spec(serde_json::json!({
            "healthPort": 9150, "ipv6Support": true,
            "defaultEndpointToHostAction": "Return"
        }))));
        let (c, problems) = layers.resolve();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(c.health_port, 9200);
        assert_eq!(c.sources["HealthPort"], Source::Environment);
        assert_eq!(c.log_severity_screen, LogSeverity::Debug);
        assert!(c.ipv6_support);
        assert_eq!(c.sources["Ipv6Support"], Source::DatastorePerHost);
        assert_eq!(c.route_refresh_interval, Duration::from_secs(30));
        assert_eq!(c.sources["RouteRefreshInterval"], Source::DatastoreGlobal);
        assert_eq!(c.default_endpoint_to_host_action, "RETURN");

        // Removing the per-host configuration falls back to the global one.
        layers.set_per_host(None);
        let (c, _) = layers.resolve();
        assert!(!c.ipv6_support);
        assert_eq!(c.default_endpoint_to_host_action, "ACCEPT");
    }

    #[test]
    fn invalid_values_fall_through_to_the_next_source() {
        let env = Env::from_pairs([
            ("FELIX_HEALTHPORT", "99999"),
            ("FELIX_IPV6SUPPORT", "maybe"),
        ]);
        let mut layers = Layers::from_env(&env);
        layers.set_global(Some(&spec(serde_json::json!({
            "healthPort": 9100, "logSeverityScreen": "Verbose",
            "defaultEndpointToHostAction": "Reject"
        }))));
        let (c, problems) = layers.resolve();
        assert_eq!(c.health_port, 9100);
        assert!(c.ipv6_support, "invalid env falls back to the default");
        assert_eq!(c.log_severity_screen, LogSeverity::Info);
        assert_eq!(c.default_endpoint_to_host_action, "DROP");
        let params: Vec<_> = problems.iter().map(|p| (p.param, p.source)).collect();
        assert!(params.contains(&("HealthPort", Source::Environment)));
        assert!(params.contains(&("Ipv6Support", Source::Environment)));
        assert!(params.contains(&("LogSeverityScreen", Source::DatastoreGlobal)));
        assert!(params.contains(&("DefaultEndpointToHostAction", Source::DatastoreGlobal)));
        assert!(
            problems[0].to_string().contains("not valid"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn intervals_accept_seconds_and_durations() {
        let env = Env::from_pairs([
            ("FELIX_ROUTEREFRESHINTERVAL", "2.5"),
            ("FELIX_IPTABLESREFRESHINTERVAL", "7"),
        ]);
        let (c, _) = Layers::from_env(&env).resolve();
        assert_eq!(c.route_refresh_interval, Duration::from_millis(2500));
        // Only the iptables interval was given: it governs drift repair.
        assert_eq!(c.table_refresh_interval(), Some(Duration::from_secs(7)));
        let env = Env::from_pairs([
            ("FELIX_NFTABLESREFRESHINTERVAL", "3s"),
            ("FELIX_IPTABLESREFRESHINTERVAL", "7"),
            ("FELIX_ROUTEREFRESHINTERVAL", "0"),
        ]);
        let (c, _) = Layers::from_env(&env).resolve();
        assert_eq!(c.table_refresh_interval(), Some(Duration::from_secs(3)));
        assert_eq!(c.route_refresh(), None);
    }

    #[test]
    fn port_lists_in_calicos_forms() {
        let ports = parse_port_list("22, udp:68,tcp:10.0.0.0/8:179,udp:[fd00::/64]:53").unwrap();
        let pp = |protocol: &str, port, net: &str| ProtoPort {
            protocol: protocol.into(),
            port,
            net: net.into(),
        };
        assert_eq!(
            ports,
            vec![
                pp("tcp", 22, ""),
                pp("udp", 68, ""),
                pp("tcp", 179, "10.0.0.0/8"),
                pp("udp", 53, "fd00::/64"),
            ]
        );
        assert!(parse_port_list("icmp:1").is_err());
        assert!(parse_port_list("tcp:70000").is_err());
        assert!(parse_port_list("a:b:c:d").is_err());

        let env = Env::from_pairs([
            ("FELIX_FAILSAFEINBOUNDHOSTPORTS", "none"),
            ("FELIX_FAILSAFEOUTBOUNDHOSTPORTS", "udp:5353"),
        ]);
        let (c, _) = Layers::from_env(&env).resolve();
        let failsafe = c.failsafe().unwrap();
        assert!(failsafe.inbound.is_empty());
        assert_eq!(failsafe.outbound.len(), 1);
        assert_eq!(failsafe.outbound[0].port, 5353);

        let mut layers = Layers::default();
        layers.set_global(Some(&spec(serde_json::json!({
            "failsafeInboundHostPorts": [{"protocol": "TCP", "port": 2222}]
        }))));
        let (c, problems) = layers.resolve();
        assert!(problems.is_empty());
        assert_eq!(c.failsafe().unwrap().inbound[0].port, 2222);
    }

    #[test]
    fn generator_settings_follow_the_config() {
        let env = Env::from_pairs([
            ("FELIX_INTERFACEPREFIX", "cali,tap"),
            ("FELIX_IPTABLESMARKMASK", "0xff00"),
            ("FELIX_IPV6SUPPORT", "false"),
            ("FELIX_DEFAULTENDPOINTTOHOSTACTION", "accept"),
        ]);
        let (c, problems) = Layers::from_env(&env).resolve();
        assert!(problems.is_empty(), "{problems:?}");
        let dp = c.dataplane().unwrap();
        assert_eq!(dp.workload_interface_prefixes, vec!["cali", "tap"]);
        assert!(!dp.ipv6);
        assert_eq!(dp.marks.accept, 0x100);
        assert_eq!(
            dp.endpoint_to_host_action,
            calico_dataplane::EndpointToHostAction::Accept
        );
        assert_eq!(c.interface_prefixes(), vec!["cali", "tap"]);
        // A value the generator cannot use is reported by the conversion.
        let env = Env::from_pairs([("FELIX_LOGPREFIX", "a\"b")]);
        let (c, _) = Layers::from_env(&env).resolve();
        assert!(c.dataplane().is_err());
        // Zero values: "none" is refused where Calico refuses it.
        let env = Env::from_pairs([("FELIX_INTERFACEPREFIX", "none")]);
        let (c, problems) = Layers::from_env(&env).resolve();
        assert_eq!(c.interface_prefix, "cali");
        assert_eq!(problems.len(), 1);
    }
}
