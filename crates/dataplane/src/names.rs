//! Names of the chains, sets and maps the generator creates.
//!
//! Chain names follow Calico's prefixes (`cali-tw-` to a workload,
//! `cali-fw-` from it, `cali-pi-`/`cali-po-` for a policy's inbound and
//! outbound rules, `cali-pri-`/`cali-pro-` for a profile's, and so on), so
//! someone who knows Calico's ruleset can read ours. Names must be nft
//! identifiers; anything that would not be one, or would be longer than
//! [`MAX_NAME`], is made one and given a hash suffix so that distinct inputs
//! never share a name.

use base64::Engine as _;
use calico_nftables::Rule;
use calico_policy::{IpSetId, PolicyKey, PolicyKind};
use sha2::{Digest, Sha224};

use crate::Direction;

/// Longest name generated; nft allows 255, but shorter names keep the
/// ruleset readable.
pub const MAX_NAME: usize = 64;

/// Length of the hash suffix of a name that had to be shortened or cleaned.
const HASH_LEN: usize = 10;

fn identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// `prefix` + `text` if that is an nft identifier of at most [`MAX_NAME`]
/// bytes; otherwise a cleaned, shortened form ending in `_` and a hash of
/// `text`. `prefix` must itself be an identifier.
pub fn limited(prefix: &str, text: &str) -> String {
    let name = format!("{prefix}{text}");
    if name.len() <= MAX_NAME && text.chars().all(identifier_char) {
        return name;
    }
    let digest = Sha224::digest(text.as_bytes());
    let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    let keep = MAX_NAME - prefix.len() - HASH_LEN - 1;
    let cleaned: String = text
        .chars()
        .map(|c| if identifier_char(c) { c } else { '_' })
        .take(keep)
        .collect();
    format!("{prefix}{cleaned}_{}", &hash[..HASH_LEN])
}

/// A policy's chain for one direction: `cali-pi-` (ingress) or `cali-po-`
/// (egress), then `np.<namespace>.<name>`, `gnp.<name>` or
/// `knp.<namespace>.<name>` (namespaces never contain dots).
pub fn policy_chain(key: &PolicyKey, direction: Direction) -> String {
    let prefix = match direction {
        Direction::Ingress => "cali-pi-",
        Direction::Egress => "cali-po-",
    };
    let text = match key.kind {
        PolicyKind::NetworkPolicy => format!("np.{}.{}", key.namespace, key.name),
        PolicyKind::GlobalNetworkPolicy => format!("gnp.{}", key.name),
        PolicyKind::KubernetesNetworkPolicy => format!("knp.{}.{}", key.namespace, key.name),
    };
    limited(prefix, &text)
}

/// A profile's chain for one direction: `cali-pri-` or `cali-pro-` and the
/// profile's name.
pub fn profile_chain(name: &str, direction: Direction) -> String {
    let prefix = match direction {
        Direction::Ingress => "cali-pri-",
        Direction::Egress => "cali-pro-",
    };
    limited(prefix, name)
}

/// The kinds of per-endpoint chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EndpointChain {
    /// Traffic to a workload (its ingress policy).
    ToWorkload,
    /// Traffic from a workload (its egress policy).
    FromWorkload,
    /// Traffic from the host out of a host endpoint (egress).
    ToHost,
    /// Traffic into the host through a host endpoint (ingress).
    FromHost,
    /// Forwarded traffic leaving through a host endpoint.
    ToHostForward,
    /// Forwarded traffic arriving through a host endpoint.
    FromHostForward,
    /// Untracked (doNotTrack) policy, host egress.
    ToHostUntracked,
    /// Untracked (doNotTrack) policy, host ingress.
    FromHostUntracked,
    /// Pre-DNAT policy, host ingress.
    FromHostPreDnat,
}

impl EndpointChain {
    fn prefix(self) -> &'static str {
        match self {
            EndpointChain::ToWorkload => "cali-tw-",
            EndpointChain::FromWorkload => "cali-fw-",
            EndpointChain::ToHost => "cali-th-",
            EndpointChain::FromHost => "cali-fh-",
            EndpointChain::ToHostForward => "cali-thfw-",
            EndpointChain::FromHostForward => "cali-fhfw-",
            EndpointChain::ToHostUntracked => "cali-thnt-",
            EndpointChain::FromHostUntracked => "cali-fhnt-",
            EndpointChain::FromHostPreDnat => "cali-fhpd-",
        }
    }
}

/// What Calico calls the interface of a host endpoint that covers every
/// host interface (`interfaceName: "*"`), in chain names.
pub const ALL_INTERFACES: &str = "any-interface-at-all";

/// Length of the content hash that names a workload chain: 96 bits, far
/// beyond any chance of two different chains sharing a name.
const WORKLOAD_HASH_LEN: usize = 16;

/// A workload's chain for one direction (`ToWorkload` or `FromWorkload`),
/// named after what it holds: the prefix and a hash of its rules. Every
/// workload whose chain would hold the same rules (in practice, every
/// replica of a deployment) goes to the same chain, so the table grows
/// with the distinct programs on the node, not with its pods; the dispatch
/// maps say which interface goes where. (Calico names these chains after
/// the interface, one per workload.)
pub fn workload_chain(kind: EndpointChain, rules: &[Rule]) -> String {
    let mut digest = Sha224::new();
    for rule in rules {
        digest.update(rule.to_string().as_bytes());
        digest.update(b"\n");
    }
    let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.finalize());
    format!("{}{}", kind.prefix(), &hash[..WORKLOAD_HASH_LEN])
}

/// The chain of one host endpoint, named after its interface.
pub fn endpoint_chain(kind: EndpointChain, interface: &str) -> String {
    let interface = if interface == "*" {
        ALL_INTERFACES
    } else {
        interface
    };
    limited(kind.prefix(), interface)
}

/// An IP set's nft set: `cali40`/`cali60` (per family, as Calico) and the
/// set's id with `:` made `-` (as Calico's nftables mode does).
pub fn ip_set(id: &IpSetId, v6: bool) -> String {
    let prefix = if v6 { "cali60" } else { "cali40" };
    limited(prefix, &id.as_str().replace(':', "-"))
}

// Static chains and maps.
pub const FORWARD: &str = "filter-FORWARD";
pub const INPUT: &str = "filter-INPUT";
pub const OUTPUT: &str = "filter-OUTPUT";
pub const RAW_PREROUTING: &str = "raw-PREROUTING";
pub const RAW_OUTPUT: &str = "raw-OUTPUT";
pub const MANGLE_PREROUTING: &str = "mangle-PREROUTING";

pub const FROM_WORKLOAD_DISPATCH: &str = "cali-from-wl-dispatch";
pub const TO_WORKLOAD_DISPATCH: &str = "cali-to-wl-dispatch";
pub const WORKLOAD_TO_HOST: &str = "cali-wl-to-host";
pub const FROM_HOST_DISPATCH: &str = "cali-from-host-endpoint";
pub const TO_HOST_DISPATCH: &str = "cali-to-host-endpoint";
pub const FROM_HOST_FORWARD_DISPATCH: &str = "cali-from-hep-forward";
pub const TO_HOST_FORWARD_DISPATCH: &str = "cali-to-hep-forward";
pub const FROM_HOST_UNTRACKED_DISPATCH: &str = "cali-from-hep-untracked";
pub const TO_HOST_UNTRACKED_DISPATCH: &str = "cali-to-hep-untracked";
pub const FROM_HOST_PRE_DNAT_DISPATCH: &str = "cali-from-hep-pre-dnat";
pub const FAILSAFE_IN: &str = "cali-failsafe-in";
pub const FAILSAFE_OUT: &str = "cali-failsafe-out";

/// The verdict map a dispatch chain looks the interface up in: the chain's
/// name with `-map`.
pub fn dispatch_map(dispatch_chain: &str) -> String {
    format!("{dispatch_chain}-map")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_table() {
        let cases: &[(String, &str)] = &[
            (
                policy_chain(
                    &PolicyKey::network_policy("prod", "allow-web"),
                    Direction::Ingress,
                ),
                "cali-pi-np.prod.allow-web",
            ),
            (
                policy_chain(&PolicyKey::global("default.deny"), Direction::Egress),
                "cali-po-gnp.default.deny",
            ),
            (
                policy_chain(&PolicyKey::kubernetes("a", "b"), Direction::Egress),
                "cali-po-knp.a.b",
            ),
            (
                profile_chain("kns.prod", Direction::Ingress),
                "cali-pri-kns.prod",
            ),
            (
                endpoint_chain(EndpointChain::FromHost, "eth0"),
                "cali-fh-eth0",
            ),
            (
                endpoint_chain(EndpointChain::FromHost, "*"),
                "cali-fh-any-interface-at-all",
            ),
            (
                ip_set(
                    &IpSetId("s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug".into()),
                    false,
                ),
                "cali40s-5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn workload_chains_are_named_by_their_rules() {
        let drop = [Rule::new().drop()];
        let accept = [Rule::new().accept()];
        let name = workload_chain(EndpointChain::ToWorkload, &drop);
        assert!(name.starts_with("cali-tw-"), "{name}");
        assert!(calico_nftables::validate::is_identifier(&name));
        assert_eq!(name, workload_chain(EndpointChain::ToWorkload, &drop));
        assert_ne!(name, workload_chain(EndpointChain::ToWorkload, &accept));
        assert_ne!(name, workload_chain(EndpointChain::ToWorkload, &[]));
        let from = workload_chain(EndpointChain::FromWorkload, &drop);
        assert_eq!(from.strip_prefix("cali-fw-"), name.strip_prefix("cali-tw-"));
    }

    #[test]
    fn unusable_text_is_cleaned_and_hashed() {
        let a = limited("cali-pri-", "ksa.ns/with:odd chars");
        let b = limited("cali-pri-", "ksa.ns_with_odd_chars");
        assert!(a.starts_with("cali-pri-ksa.ns_with_odd_chars_"), "{a}");
        assert_ne!(a, b, "cleaning must not make distinct inputs collide");
        let long = "x".repeat(200);
        let name = limited("cali-pi-", &long);
        assert_eq!(name.len(), MAX_NAME);
        assert_ne!(name, limited("cali-pi-", &"x".repeat(201)));
        assert!(calico_nftables::validate::is_identifier(&name));
        assert!(calico_nftables::validate::is_identifier(&a));
    }
}
