//! Rules → [`RuleProgram`]s: selectors, named ports and nets become IP sets
//! (what Calico's rule scanner does), and each rule learns which IP
//! families it exists in (what Felix's per-family rule filtering does).

use base64::Engine as _;
use calico_selector::Selector;
use ipnet::IpNet;
use sha2::{Digest, Sha224};

use crate::ids::IpSetId;
use crate::normalize::{PolicyDef, ProfileDef, RuleDef, SideDef};
use crate::program::{
    IpSetKind, IpVersions, MatchSide, NamedPortProtocol, PolicyProgram, ProfileProgram, RuleAction,
    RuleProgram,
};

/// Calico's `hash.MakeUniqueID`: `<prefix>:` + unpadded base64url of
/// SHA-224 over `<prefix>:<content>`.
pub(crate) fn make_unique_id(prefix: &str, content: &str) -> String {
    let digest = Sha224::new()
        .chain_update(prefix.as_bytes())
        .chain_update(b":")
        .chain_update(content.as_bytes())
        .finalize();
    format!(
        "{prefix}:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

/// What an IP set is computed from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SetDef {
    Selector(Selector),
    NamedPort {
        selector: Selector,
        protocol: NamedPortProtocol,
        name: String,
    },
    Nets(Vec<IpNet>),
}

impl SetDef {
    fn nets(nets: &[IpNet]) -> SetDef {
        let mut nets = nets.to_vec();
        nets.sort();
        nets.dedup();
        SetDef::Nets(nets)
    }

    pub(crate) fn id(&self) -> IpSetId {
        IpSetId(match self {
            SetDef::Selector(s) => s.unique_id(),
            SetDef::NamedPort {
                selector,
                protocol,
                name,
            } => make_unique_id(
                "n",
                &format!("{},{},{name}", selector.unique_id(), protocol.as_str()),
            ),
            SetDef::Nets(nets) => {
                let text: Vec<String> = nets.iter().map(ToString::to_string).collect();
                make_unique_id("nets", &text.join(","))
            }
        })
    }

    pub(crate) fn kind(&self) -> IpSetKind {
        match self {
            SetDef::Selector(s) => IpSetKind::Selector {
                selector: s.canonical(),
            },
            SetDef::NamedPort {
                selector,
                protocol,
                name,
            } => IpSetKind::NamedPort {
                selector: selector.canonical(),
                protocol: *protocol,
                port_name: name.clone(),
            },
            SetDef::Nets(_) => IpSetKind::Nets,
        }
    }

    pub(crate) fn selector(&self) -> Option<&Selector> {
        match self {
            SetDef::Selector(s) | SetDef::NamedPort { selector: s, .. } => Some(s),
            SetDef::Nets(_) => None,
        }
    }
}

/// Collects the sets a policy's rules use, once each.
#[derive(Debug, Default)]
pub(crate) struct SetCollector {
    pub sets: Vec<(IpSetId, SetDef)>,
}

impl SetCollector {
    fn add(&mut self, def: SetDef) -> IpSetId {
        let id = def.id();
        if !self.sets.iter().any(|(i, _)| *i == id) {
            self.sets.push((id.clone(), def));
        }
        id
    }
}

fn compile_side(side: &SideDef, protocol: NamedPortProtocol, sets: &mut SetCollector) -> MatchSide {
    // Named ports are filtered by the positive selector: the rule can only
    // match endpoints it selects anyway.
    let named_selector = side.selector.clone().unwrap_or_else(Selector::all);
    let named = |names: &[String], sets: &mut SetCollector| -> Vec<IpSetId> {
        names
            .iter()
            .map(|name| {
                sets.add(SetDef::NamedPort {
                    selector: named_selector.clone(),
                    protocol,
                    name: name.clone(),
                })
            })
            .collect()
    };
    let named_ports = named(&side.named_ports, sets);
    let not_named_ports = named(&side.not_named_ports, sets);
    // With only named ports, their sets already hold just the selected
    // endpoints; the plain selector set would add nothing.
    let ip_sets = match &side.selector {
        Some(s) if !side.ports.is_empty() || side.named_ports.is_empty() => {
            vec![sets.add(SetDef::Selector(s.clone()))]
        }
        _ => Vec::new(),
    };
    MatchSide {
        nets: (!side.nets.is_empty()).then(|| sets.add(SetDef::nets(&side.nets))),
        not_nets: (!side.not_nets.is_empty()).then(|| sets.add(SetDef::nets(&side.not_nets))),
        ip_sets,
        not_ip_sets: side
            .not_selector
            .iter()
            .map(|s| sets.add(SetDef::Selector(s.clone())))
            .collect(),
        ports: side.ports.clone(),
        named_ports,
        not_ports: side.not_ports.clone(),
        not_named_ports,
    }
}

/// Whether Calico renders the rule in this family: its `ipVersion` allows
/// it, and no nets list is left empty by dropping the other family's nets.
/// A negated catch-all net (`0.0.0.0/0`, `::/0`) also removes the rule, as
/// it can never match.
fn exists_in_family(rule: &RuleDef, v6: bool) -> bool {
    if rule.ip_version.is_some_and(|v| (v == 6) != v6) {
        return false;
    }
    let in_family = |n: &&IpNet| matches!(n, IpNet::V6(_)) == v6;
    for side in [&rule.src, &rule.dst] {
        if !side.nets.is_empty() && !side.nets.iter().any(|n| in_family(&n)) {
            return false;
        }
        if !side.not_nets.is_empty() {
            let mut family = side.not_nets.iter().filter(in_family).peekable();
            if family.peek().is_none() {
                return false;
            }
            if family.any(|n| n.prefix_len() == 0) {
                return false;
            }
        }
    }
    true
}

pub(crate) fn compile_rule(rule: &RuleDef, sets: &mut SetCollector) -> RuleProgram {
    RuleProgram {
        action: rule.action,
        ip_versions: IpVersions {
            v4: exists_in_family(rule, false),
            v6: exists_in_family(rule, true),
        },
        protocol: rule.protocol,
        not_protocol: rule.not_protocol,
        icmp: rule.icmp,
        not_icmp: rule.not_icmp,
        src: compile_side(&rule.src, rule.named_port_protocol, sets),
        dst: compile_side(&rule.dst, rule.named_port_protocol, sets),
    }
}

fn compile_rules(rules: &[RuleDef], sets: &mut SetCollector) -> Vec<RuleProgram> {
    rules.iter().map(|r| compile_rule(r, sets)).collect()
}

pub(crate) fn compile_policy(def: &PolicyDef) -> (PolicyProgram, SetCollector) {
    let mut sets = SetCollector::default();
    let program = PolicyProgram {
        key: def.key.clone(),
        tier: def.tier.clone(),
        ingress: compile_rules(&def.inbound, &mut sets),
        egress: compile_rules(&def.outbound, &mut sets),
    };
    (program, sets)
}

pub(crate) fn compile_profile(
    name: &str,
    def: Option<&ProfileDef>,
) -> (ProfileProgram, SetCollector) {
    let mut sets = SetCollector::default();
    let program = match def {
        Some(def) => ProfileProgram {
            name: name.to_string(),
            ingress: compile_rules(&def.inbound, &mut sets),
            egress: compile_rules(&def.outbound, &mut sets),
            missing: false,
        },
        None => {
            let deny = RuleProgram {
                action: RuleAction::Deny,
                ip_versions: IpVersions { v4: true, v6: true },
                protocol: None,
                not_protocol: None,
                icmp: None,
                not_icmp: None,
                src: MatchSide::default(),
                dst: MatchSide::default(),
            };
            ProfileProgram {
                name: name.to_string(),
                ingress: vec![deny.clone()],
                egress: vec![deny],
                missing: true,
            }
        }
    };
    (program, sets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::PortRange;

    fn side(f: impl FnOnce(&mut SideDef)) -> SideDef {
        let mut s = SideDef::default();
        f(&mut s);
        s
    }

    fn rule(src: SideDef, dst: SideDef) -> RuleDef {
        RuleDef {
            action: RuleAction::Allow,
            ip_version: None,
            protocol: Some(6),
            named_port_protocol: NamedPortProtocol::Tcp,
            not_protocol: None,
            icmp: None,
            not_icmp: None,
            src,
            dst,
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn unique_ids_match_calico() {
        // Calico's selector ids are make_unique_id("s", canonical).
        let sel = Selector::parse("").unwrap();
        assert_eq!(make_unique_id("s", &sel.canonical()), sel.unique_id());
        assert_eq!(sel.unique_id(), "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug");
    }

    #[test]
    fn named_ports_replace_the_selector_set() {
        let sel = Selector::parse("app == 'db'").unwrap();
        let mut sets = SetCollector::default();
        let only_named = compile_rule(
            &rule(
                SideDef::default(),
                side(|s| {
                    s.selector = Some(sel.clone());
                    s.named_ports = vec!["pg".into()];
                }),
            ),
            &mut sets,
        );
        assert!(only_named.dst.ip_sets.is_empty());
        assert_eq!(only_named.dst.named_ports.len(), 1);
        assert_eq!(
            sets.sets[0].1,
            SetDef::NamedPort {
                selector: sel.clone(),
                protocol: NamedPortProtocol::Tcp,
                name: "pg".into()
            }
        );

        let mut sets = SetCollector::default();
        let mixed = compile_rule(
            &rule(
                SideDef::default(),
                side(|s| {
                    s.selector = Some(sel.clone());
                    s.named_ports = vec!["pg".into()];
                    s.ports = vec![PortRange { min: 80, max: 80 }];
                }),
            ),
            &mut sets,
        );
        assert_eq!(mixed.dst.ip_sets, vec![IpSetId(sel.unique_id())]);
        assert_eq!(sets.sets.len(), 2);
    }

    #[test]
    fn rule_families_table() {
        // (ipVersion, src nets, src notNets, exists in v4, exists in v6)
        type Case<'a> = (Option<u8>, &'a [&'a str], &'a [&'a str], bool, bool);
        let cases: &[Case] = &[
            (None, &[], &[], true, true),
            (Some(4), &[], &[], true, false),
            (Some(6), &[], &[], false, true),
            (None, &["10.0.0.0/8"], &[], true, false),
            (None, &["10.0.0.0/8", "fd00::/8"], &[], true, true),
            (None, &[], &["10.1.0.0/16"], true, false),
            (None, &[], &["0.0.0.0/0", "fd00::/8"], false, true),
            (Some(6), &["10.0.0.0/8"], &[], false, false),
        ];
        for (ipv, nets, not_nets, v4, v6) in cases {
            let mut r = rule(
                side(|s| {
                    s.nets = nets.iter().map(|n| net(n)).collect();
                    s.not_nets = not_nets.iter().map(|n| net(n)).collect();
                }),
                SideDef::default(),
            );
            r.ip_version = *ipv;
            let p = compile_rule(&r, &mut SetCollector::default());
            assert_eq!(
                (p.ip_versions.v4, p.ip_versions.v6),
                (*v4, *v6),
                "{ipv:?} {nets:?} {not_nets:?}"
            );
        }
    }

    #[test]
    fn nets_sets_are_order_independent() {
        let a = SetDef::nets(&[net("10.0.0.0/8"), net("192.168.0.0/16")]);
        let b = SetDef::nets(&[net("192.168.0.0/16"), net("10.0.0.0/8"), net("10.0.0.0/8")]);
        assert_eq!(a.id(), b.id());
        assert_ne!(a.id(), SetDef::nets(&[net("10.0.0.0/8")]).id());
    }
}
