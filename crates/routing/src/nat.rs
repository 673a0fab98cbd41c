//! NAT outgoing: traffic from a pool with `natOutgoing: true` to an
//! address outside every pool leaves with the node's address (masquerade);
//! traffic between pools is never translated. Calico's agent does this
//! with two IP sets (the masquerading pools, all pools) and one rule in
//! the NAT postrouting chain; this module computes the same as a value and
//! renders it as an nftables table of its own, `ip calico-nat`.
//!
//! The table is applied whole, in one `nft -f` transaction that replaces
//! it (see [`NatOutgoing::replace_script`]), through `calico-nftables`'
//! runner. It is rendered here rather than built as a
//! `calico_nftables::Ruleset` because that model has no masquerade
//! statement yet; once it has, [`NatOutgoing`] becomes a `Ruleset` and
//! joins the agent's reconciled tables.

use std::collections::BTreeSet;
use std::fmt::Write;

use calico_nftables::{Family, TableId};
use ipnet::Ipv4Net;

/// The table NAT outgoing lives in.
pub const NAT_TABLE: &str = "calico-nat";
/// Sets and chain inside it, named after Calico's IP sets.
const MASQ_SET: &str = "masq-ipam-pools";
const ALL_SET: &str = "all-ipam-pools";
const CHAIN: &str = "nat-outgoing";

/// The desired NAT outgoing state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NatOutgoing {
    /// Pools whose traffic to the outside is masqueraded.
    pub masquerade: BTreeSet<Ipv4Net>,
    /// Every pool: destinations in these are never translated.
    pub all_pools: BTreeSet<Ipv4Net>,
}

impl NatOutgoing {
    /// The table's identity.
    pub fn table() -> TableId {
        TableId::new(Family::Ip, NAT_TABLE)
    }

    /// Whether the table is needed at all.
    pub fn is_empty(&self) -> bool {
        self.masquerade.is_empty()
    }

    /// The table as nft script, one statement per line; empty when no
    /// pool masquerades.
    pub fn render(&self) -> String {
        if self.is_empty() {
            return String::new();
        }
        let mut out = String::new();
        let table = format!("ip {NAT_TABLE}");
        let _ = writeln!(out, "add table {table}");
        for (set, members) in [(MASQ_SET, &self.masquerade), (ALL_SET, &self.all_pools)] {
            let _ = writeln!(
                out,
                "add set {table} {set} {{ type ipv4_addr; flags interval; }}"
            );
            if !members.is_empty() {
                let elements: Vec<String> = members.iter().map(|n| n.trunc().to_string()).collect();
                let _ = writeln!(
                    out,
                    "add element {table} {set} {{ {} }}",
                    elements.join(", ")
                );
            }
        }
        let _ = writeln!(
            out,
            "add chain {table} {CHAIN} {{ type nat hook postrouting priority srcnat; policy accept; }}"
        );
        let _ = writeln!(
            out,
            "add rule {table} {CHAIN} ip saddr @{MASQ_SET} ip daddr != @{ALL_SET} masquerade fully-random"
        );
        out
    }

    /// One transaction that leaves exactly this table (or no table, when
    /// empty) whatever was there before: create it if missing, delete it,
    /// then write it again. nft applies all of it or nothing.
    pub fn replace_script(&self) -> String {
        let mut out = format!("add table ip {NAT_TABLE}\ndelete table ip {NAT_TABLE}\n");
        out.push_str(&self.render());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> BTreeSet<Ipv4Net> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn renders_sets_and_the_masquerade_rule() {
        let nat = NatOutgoing {
            masquerade: nets(&["192.168.0.0/16"]),
            all_pools: nets(&["192.168.0.0/16", "10.244.0.0/16"]),
        };
        let script = nat.render();
        assert_eq!(
            script.lines().collect::<Vec<_>>(),
            vec![
                "add table ip calico-nat",
                "add set ip calico-nat masq-ipam-pools { type ipv4_addr; flags interval; }",
                "add element ip calico-nat masq-ipam-pools { 192.168.0.0/16 }",
                "add set ip calico-nat all-ipam-pools { type ipv4_addr; flags interval; }",
                "add element ip calico-nat all-ipam-pools { 10.244.0.0/16, 192.168.0.0/16 }",
                "add chain ip calico-nat nat-outgoing { type nat hook postrouting priority srcnat; policy accept; }",
                "add rule ip calico-nat nat-outgoing ip saddr @masq-ipam-pools ip daddr != @all-ipam-pools masquerade fully-random",
            ]
        );
        assert!(
            nat.replace_script()
                .starts_with("add table ip calico-nat\ndelete table ip calico-nat\nadd table")
        );
    }

    #[test]
    fn nothing_to_masquerade_means_no_table() {
        let nat = NatOutgoing {
            masquerade: BTreeSet::new(),
            all_pools: nets(&["192.168.0.0/16"]),
        };
        assert!(nat.is_empty());
        assert_eq!(nat.render(), "");
        assert_eq!(
            nat.replace_script(),
            "add table ip calico-nat\ndelete table ip calico-nat\n"
        );
    }
}
