//! The `-o ps`, `-o wide` and `-o custom-columns=...` tables.
//!
//! Columns and cell contents are calicoctl's (its per-kind "resource
//! managers"): each cell is what Calico's Go template prints for that
//! field, including Go's spelling of absent pointers (`<nil>`), booleans
//! and floats (`1e+06`). Cells are read from the resource as JSON, so they
//! follow Calico's field names. Layout is Go's `tabwriter` with calicoctl's
//! settings (minimum width 5, padding 3): every column, the last included,
//! is padded, and a blank line follows each table.

use serde_json::Value;

use calico_model::gofmt::format_g;
use calico_model::kind::Kind;

/// A kind's default columns.
pub struct Columns {
    pub ps: &'static [&'static str],
    pub wide: &'static [&'static str],
    /// Whether a NAMESPACE column is put first when printing namespaces.
    pub namespaced: bool,
}

/// calicoctl's columns for `kind`.
pub fn columns(kind: Kind) -> Columns {
    let c = |ps, wide, namespaced| Columns {
        ps,
        wide,
        namespaced,
    };
    match kind {
        Kind::IpPool => c(
            &["NAME", "CIDR", "SELECTOR"],
            &[
                "NAME",
                "CIDR",
                "NAT",
                "IPIPMODE",
                "VXLANMODE",
                "DISABLED",
                "DISABLEBGPEXPORT",
                "SELECTOR",
                "ASSIGNMENTMODE",
            ],
            false,
        ),
        Kind::BgpConfiguration => c(
            &["NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"],
            &["NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"],
            false,
        ),
        Kind::BgpFilter => c(
            &[
                "NAME",
                "NUMEXPORTV4",
                "NUMIMPORTV4",
                "NUMEXPORTV6",
                "NUMIMPORTV6",
            ],
            &[
                "NAME",
                "NUMEXPORTV4",
                "NUMIMPORTV4",
                "NUMEXPORTV6",
                "NUMIMPORTV6",
            ],
            false,
        ),
        Kind::BgpPeer => c(
            &["NAME", "PEERIP", "NODE", "ASN"],
            &["NAME", "PEERIP", "NODE", "ASN"],
            false,
        ),
        Kind::ClusterInformation => c(
            &[
                "NAME",
                "CLUSTERGUID",
                "CLUSTERTYPE",
                "CALICOVERSION",
                "DATASTOREREADY",
            ],
            &[
                "NAME",
                "CLUSTERGUID",
                "CLUSTERTYPE",
                "CALICOVERSION",
                "DATASTOREREADY",
            ],
            false,
        ),
        Kind::FelixConfiguration | Kind::KubeControllersConfiguration => {
            c(&["NAME"], &["NAME"], false)
        }
        Kind::GlobalNetworkPolicy | Kind::StagedGlobalNetworkPolicy => c(
            &["NAME", "TIER"],
            &["NAME", "TIER", "ORDER", "SELECTOR"],
            false,
        ),
        Kind::NetworkPolicy | Kind::StagedNetworkPolicy => c(
            &["NAME", "TIER"],
            &["NAME", "TIER", "ORDER", "SELECTOR"],
            true,
        ),
        Kind::GlobalNetworkSet => c(&["NAME"], &["NAME", "NETS"], false),
        Kind::NetworkSet => c(&["NAME"], &["NAME", "NETS"], true),
        Kind::HostEndpoint => c(
            &["NAME", "NODE"],
            &["NAME", "NODE", "INTERFACE", "IPS", "PROFILES"],
            false,
        ),
        Kind::IpamConfiguration => c(
            &["NAME", "STRICTAFFINITY", "AUTOALLOCATEBLOCKS"],
            &[
                "NAME",
                "STRICTAFFINITY",
                "AUTOALLOCATEBLOCKS",
                "MAXBLOCKSPERHOST",
            ],
            false,
        ),
        Kind::IpReservation => c(&["NAME"], &["NAME", "CIDRS"], false),
        Kind::Node => c(&["NAME"], &["NAME", "ASN", "IPV4", "IPV6"], false),
        Kind::CalicoNodeStatus => c(&["NAME", "NODE"], &["NAME", "NODE", "CLASSES"], false),
        Kind::Profile => c(&["NAME"], &["NAME", "LABELS"], false),
        Kind::StagedKubernetesNetworkPolicy | Kind::KubernetesNetworkPolicy => {
            c(&["NAME"], &["NAME", "PODSELECTOR"], true)
        }
        Kind::Tier => c(&["NAME", "ORDER"], &["NAME", "ORDER"], false),
        Kind::WorkloadEndpoint => c(
            &["WORKLOAD", "NODE", "NETWORKS", "INTERFACE"],
            &[
                "NAME",
                "WORKLOAD",
                "NODE",
                "NETWORKS",
                "INTERFACE",
                "PROFILES",
                "NATS",
            ],
            true,
        ),
    }
}

/// Every heading a kind's cells are defined for (what custom-columns may
/// name), sorted.
pub fn known_headings(kind: Kind) -> Vec<&'static str> {
    const ALL: &[&str] = &[
        "ASN",
        "ASNUMBER",
        "ASSIGNMENTMODE",
        "AUTOALLOCATEBLOCKS",
        "CALICOVERSION",
        "CIDR",
        "CIDRS",
        "CLASSES",
        "CLUSTERGUID",
        "CLUSTERTYPE",
        "DATASTOREREADY",
        "DISABLEBGPEXPORT",
        "DISABLED",
        "INTERFACE",
        "IPIPMODE",
        "IPS",
        "IPV4",
        "IPV6",
        "LABELS",
        "LOGSEVERITY",
        "MAXBLOCKSPERHOST",
        "MESHENABLED",
        "NAME",
        "NAMESPACE",
        "NAT",
        "NATS",
        "NETS",
        "NETWORKS",
        "NODE",
        "NUMEXPORTV4",
        "NUMEXPORTV6",
        "NUMIMPORTV4",
        "NUMIMPORTV6",
        "ORCHESTRATOR",
        "ORDER",
        "PEERIP",
        "PODSELECTOR",
        "PROFILES",
        "SELECTOR",
        "STRICTAFFINITY",
        "TIER",
        "VXLANMODE",
        "WORKLOAD",
    ];
    let probe = Value::Object(Default::default());
    let ctx = CellContext::default();
    ALL.iter()
        .copied()
        .filter(|h| cell(kind, h, &probe, &ctx).is_some())
        .collect()
}

/// Values a cell may need from outside the resource.
#[derive(Debug, Clone, Default)]
pub struct CellContext {
    /// The cluster's default AS number (BGPConfiguration `default`, else
    /// 64512), shown in brackets for nodes without their own.
    pub default_as_number: Option<String>,
}

/// One cell of `kind`'s table for `resource` (its JSON form), or `None` if
/// the kind has no such column.
pub fn cell(kind: Kind, heading: &str, r: &Value, ctx: &CellContext) -> Option<String> {
    use Kind as K;
    let text = match (kind, heading) {
        (_, "NAME") => string(r, "/metadata/name"),
        (
            K::NetworkPolicy | K::StagedNetworkPolicy | K::NetworkSet | K::WorkloadEndpoint,
            "NAMESPACE",
        )
        | (K::StagedKubernetesNetworkPolicy | K::KubernetesNetworkPolicy, "NAMESPACE") => {
            string(r, "/metadata/namespace")
        }

        (K::IpPool, "CIDR") => string(r, "/spec/cidr"),
        (K::IpPool, "NAT") => boolean(r, "/spec/natOutgoing"),
        (K::IpPool, "IPIPMODE") => or_default(string(r, "/spec/ipipMode"), "Never"),
        (K::IpPool, "VXLANMODE") => or_default(string(r, "/spec/vxlanMode"), "Never"),
        (K::IpPool, "DISABLED") => boolean(r, "/spec/disabled"),
        (K::IpPool, "DISABLEBGPEXPORT") => boolean(r, "/spec/disableBGPExport"),
        (K::IpPool, "SELECTOR") => string(r, "/spec/nodeSelector"),
        (K::IpPool, "ASSIGNMENTMODE") => pointer(r, "/spec/assignmentMode", scalar),

        (K::BgpConfiguration, "LOGSEVERITY") => string(r, "/spec/logSeverityScreen"),
        (K::BgpConfiguration, "MESHENABLED") => present_or_dash(r, "/spec/nodeToNodeMeshEnabled"),
        (K::BgpConfiguration, "ASNUMBER") => present_or_dash(r, "/spec/asNumber"),

        (K::BgpFilter, "NUMEXPORTV4") => length(r, "/spec/exportV4"),
        (K::BgpFilter, "NUMIMPORTV4") => length(r, "/spec/importV4"),
        (K::BgpFilter, "NUMEXPORTV6") => length(r, "/spec/exportV6"),
        (K::BgpFilter, "NUMIMPORTV6") => length(r, "/spec/importV6"),

        (K::BgpPeer, "PEERIP") => string(r, "/spec/peerIP"),
        (K::BgpPeer, "NODE") => {
            let node = string(r, "/spec/node");
            let selector = string(r, "/spec/nodeSelector");
            if !node.is_empty() {
                node
            } else if !selector.is_empty() {
                selector
            } else {
                "(global)".to_owned()
            }
        }
        (K::BgpPeer, "ASN") => or_default(scalar_at(r, "/spec/asNumber"), "0"),

        (K::ClusterInformation, "CLUSTERGUID") => string(r, "/spec/clusterGUID"),
        (K::ClusterInformation, "CLUSTERTYPE") => string(r, "/spec/clusterType"),
        (K::ClusterInformation, "CALICOVERSION") => string(r, "/spec/calicoVersion"),
        (K::ClusterInformation, "DATASTOREREADY") => pointer(r, "/spec/datastoreReady", scalar),

        (
            K::GlobalNetworkPolicy
            | K::StagedGlobalNetworkPolicy
            | K::NetworkPolicy
            | K::StagedNetworkPolicy,
            "TIER",
        ) => string(r, "/spec/tier"),
        (
            K::GlobalNetworkPolicy
            | K::StagedGlobalNetworkPolicy
            | K::NetworkPolicy
            | K::StagedNetworkPolicy,
            "SELECTOR",
        ) => string(r, "/spec/selector"),
        (
            K::GlobalNetworkPolicy
            | K::StagedGlobalNetworkPolicy
            | K::NetworkPolicy
            | K::StagedNetworkPolicy
            | K::Tier,
            "ORDER",
        ) => pointer(r, "/spec/order", float),

        (K::GlobalNetworkSet | K::NetworkSet, "NETS") => join(r, "/spec/nets", 80),

        (K::HostEndpoint, "NODE") => string(r, "/spec/node"),
        (K::HostEndpoint, "INTERFACE") => string(r, "/spec/interfaceName"),
        (K::HostEndpoint, "IPS") => join(r, "/spec/expectedIPs", 0),
        (K::HostEndpoint, "PROFILES") => join(r, "/spec/profiles", 0),

        (K::IpamConfiguration, "STRICTAFFINITY") => boolean(r, "/spec/strictAffinity"),
        (K::IpamConfiguration, "AUTOALLOCATEBLOCKS") => boolean(r, "/spec/autoAllocateBlocks"),
        (K::IpamConfiguration, "MAXBLOCKSPERHOST") => {
            or_default(scalar_at(r, "/spec/maxBlocksPerHost"), "0")
        }

        (K::IpReservation, "CIDRS") => join(r, "/spec/reservedCIDRs", 80),

        (K::Node, "ASN") => match r.pointer("/spec/bgp") {
            Some(bgp) if !bgp.is_null() => match r.pointer("/spec/bgp/asNumber") {
                Some(own) if !own.is_null() => scalar(own),
                _ => format!("({})", ctx.default_as_number.as_deref().unwrap_or("64512")),
            },
            _ => String::new(),
        },
        (K::Node, "IPV4") => string(r, "/spec/bgp/ipv4Address"),
        (K::Node, "IPV6") => string(r, "/spec/bgp/ipv6Address"),

        (K::CalicoNodeStatus, "NODE") => string(r, "/spec/node"),
        (K::CalicoNodeStatus, "CLASSES") => join(r, "/spec/classes", 0),

        (K::Profile, "LABELS") => join(r, "/spec/labelsToApply", 0),

        (K::StagedKubernetesNetworkPolicy | K::KubernetesNetworkPolicy, "PODSELECTOR") => {
            go_label_selector(r.pointer("/spec/podSelector"))
        }

        (K::WorkloadEndpoint, "NODE") => string(r, "/spec/node"),
        (K::WorkloadEndpoint, "ORCHESTRATOR") => string(r, "/spec/orchestrator"),
        (K::WorkloadEndpoint, "WORKLOAD") => {
            or_default(string(r, "/spec/workload"), &string(r, "/spec/pod"))
        }
        (K::WorkloadEndpoint, "NETWORKS") => join(r, "/spec/ipNetworks", 0),
        (K::WorkloadEndpoint, "NATS") => join(r, "/spec/ipNATs", 0),
        (K::WorkloadEndpoint, "PROFILES") => join(r, "/spec/profiles", 0),
        (K::WorkloadEndpoint, "INTERFACE") => string(r, "/spec/interfaceName"),

        _ => return None,
    };
    Some(text)
}

fn string(r: &Value, path: &str) -> String {
    match r.pointer(path) {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn or_default(s: String, default: &str) -> String {
    if s.is_empty() { default.to_owned() } else { s }
}

/// A Go bool field: absent is `false`.
fn boolean(r: &Value, path: &str) -> String {
    match r.pointer(path) {
        Some(Value::Bool(true)) => "true",
        _ => "false",
    }
    .to_owned()
}

/// A Go pointer field printed by a template: `<nil>` when absent.
fn pointer(r: &Value, path: &str, show: fn(&Value) -> String) -> String {
    match r.pointer(path) {
        None | Some(Value::Null) => "<nil>".to_owned(),
        Some(v) => show(v),
    }
}

/// `{{if .X}}{{.X}}{{else}}-{{end}}` on a pointer: set (even to false)
/// prints the value.
fn present_or_dash(r: &Value, path: &str) -> String {
    match r.pointer(path) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(v) => scalar(v),
    }
}

fn scalar_at(r: &Value, path: &str) -> String {
    r.pointer(path).map(scalar).unwrap_or_default()
}

/// A value as Go's `fmt` prints it.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.is_f64() => format_g(n.as_f64().unwrap_or(0.0)),
        Value::Number(n) => n.to_string(),
        Value::Null => "<nil>".to_owned(),
        // Go prints a struct as its field values in braces; calicoctl's
        // columns only ever do this for IPNAT (internal, external).
        Value::Object(map) => {
            let fields: Vec<String> = map.values().map(scalar).collect();
            format!("{{{}}}", fields.join(" "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(scalar).collect();
            format!("[{}]", items.join(" "))
        }
    }
}

fn float(v: &Value) -> String {
    match v.as_f64() {
        Some(f) => format_g(f),
        None => scalar(v),
    }
}

fn length(r: &Value, path: &str) -> String {
    match r.pointer(path) {
        Some(Value::Array(items)) => items.len().to_string(),
        _ => "0".to_owned(),
    }
}

/// calicoctl's `join` / `joinAndTruncate`: items joined with `,`, maps as
/// sorted `k=v`; cut to `max` bytes with `...` when `max` > 0.
fn join(r: &Value, path: &str, max: usize) -> String {
    let items: Vec<String> = match r.pointer(path) {
        Some(Value::Array(items)) => items.iter().map(scalar).collect(),
        Some(Value::Object(map)) => {
            let mut pairs: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}={}", scalar(v)))
                .collect();
            pairs.sort();
            pairs
        }
        None | Some(Value::Null) => return String::new(),
        Some(other) => vec![scalar(other)],
    };
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(item);
        if max > 0 && out.len() > max {
            let mut cut = max - 3;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push_str("...");
            break;
        }
    }
    out
}

/// A Kubernetes label selector as Go's `%v` prints the struct:
/// `{map[app:web] [{tier In [a b]}]}`.
fn go_label_selector(selector: Option<&Value>) -> String {
    let labels = match selector.and_then(|s| s.get("matchLabels")) {
        Some(Value::Object(map)) => {
            let mut pairs: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", scalar(v)))
                .collect();
            pairs.sort();
            pairs.join(" ")
        }
        _ => String::new(),
    };
    let expressions = match selector.and_then(|s| s.get("matchExpressions")) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|e| {
                let values = match e.get("values") {
                    Some(Value::Array(v)) => v.iter().map(scalar).collect::<Vec<_>>().join(" "),
                    _ => String::new(),
                };
                format!(
                    "{{{} {} [{}]}}",
                    string(e, "/key"),
                    string(e, "/operator"),
                    values
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    };
    format!("{{map[{labels}] [{expressions}]}}")
}

/// The default headings of `kind`'s table, with NAMESPACE first when
/// namespaces are printed and the kind has one.
pub fn default_headings(kind: Kind, wide: bool, print_namespace: bool) -> Vec<&'static str> {
    let cols = columns(kind);
    let mut headings = Vec::new();
    if print_namespace && cols.namespaced {
        headings.push("NAMESPACE");
    }
    headings.extend_from_slice(if wide { cols.wide } else { cols.ps });
    headings
}

/// A heading the kind has no column for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown heading {heading}, valid values are: {}", valid.join(", "))]
pub struct UnknownHeading {
    pub heading: String,
    pub valid: Vec<&'static str>,
}

/// One table of `resources` (JSON forms, all of `kind`).
pub fn table(
    kind: Kind,
    headings: &[&str],
    resources: &[Value],
    ctx: &CellContext,
) -> Result<String, UnknownHeading> {
    let mut rows = Vec::with_capacity(resources.len());
    for r in resources {
        let mut row = Vec::with_capacity(headings.len());
        for heading in headings {
            let text = cell(kind, heading, r, ctx).ok_or_else(|| UnknownHeading {
                heading: (*heading).to_owned(),
                valid: known_headings(kind),
            })?;
            row.push(text);
        }
        rows.push(row);
    }
    if resources.is_empty() {
        // An unknown heading is an error even with nothing to print.
        if let Some(bad) = headings.iter().find(|h| !known_headings(kind).contains(h)) {
            return Err(UnknownHeading {
                heading: (*bad).to_owned(),
                valid: known_headings(kind),
            });
        }
    }
    Ok(render(headings, &rows))
}

/// A table in Go `tabwriter` layout with calicoctl's settings.
pub fn render(headings: &[&str], rows: &[Vec<String>]) -> String {
    const MIN_WIDTH: usize = 5;
    const PADDING: usize = 3;
    let widths: Vec<usize> = (0..headings.len())
        .map(|i| {
            let widest = std::iter::once(headings[i].chars().count())
                .chain(
                    rows.iter()
                        .map(|r| r.get(i).map_or(0, |c| c.chars().count())),
                )
                .max()
                .unwrap_or(0);
            (widest + PADDING).max(MIN_WIDTH)
        })
        .collect();
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        for (text, width) in cells.zip(&widths) {
            out.push_str(text);
            out.push_str(&" ".repeat(width - text.chars().count()));
        }
        out.push('\n');
    };
    line(&mut headings.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    // calicoctl leaves a blank line after each table.
    out.push('\n');
    out
}

#[cfg(test)]
mod tests;
