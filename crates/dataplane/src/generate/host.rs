//! Host endpoints: their chains for normal, forward, untracked and
//! pre-DNAT policy, the dispatch chains that reach them, and the failsafe
//! chains.

use std::collections::{BTreeMap, BTreeSet};

use calico_nftables::{Key, PortProto, Rhs, Rule, Value, Verdict};
use calico_policy::program::{Direction, EndpointProgram, ProtoPort};

use super::{Stage, TableBuilder};
use crate::names::{self, EndpointChain};

impl TableBuilder<'_> {
    pub(super) fn host_chains(&mut self) {
        let hosts: Vec<(&str, &EndpointProgram)> = self.endpoints.host_programs().collect();
        let mut maps: BTreeMap<EndpointChain, BTreeMap<&str, Verdict>> = BTreeMap::new();
        let mut defaults: BTreeMap<EndpointChain, String> = BTreeMap::new();
        let (untracked, pre_dnat) = (self.any_untracked(), self.any_pre_dnat());
        for (iface, ep) in hosts {
            use Direction::{Egress, Ingress};
            use EndpointChain as C;
            let (fs_in, fs_out) = (Some(names::FAILSAFE_IN), Some(names::FAILSAFE_OUT));
            let mut chains = vec![
                (
                    C::FromHost,
                    &ep.normal.ingress,
                    Ingress,
                    Stage::Normal,
                    fs_in,
                ),
                (C::ToHost, &ep.normal.egress, Egress, Stage::Normal, fs_out),
                (
                    C::FromHostForward,
                    &ep.forward.ingress,
                    Ingress,
                    Stage::Forward,
                    None,
                ),
                (
                    C::ToHostForward,
                    &ep.forward.egress,
                    Egress,
                    Stage::Forward,
                    None,
                ),
            ];
            if untracked {
                chains.extend([
                    (
                        C::FromHostUntracked,
                        &ep.untracked.ingress,
                        Ingress,
                        Stage::Untracked,
                        fs_in,
                    ),
                    (
                        C::ToHostUntracked,
                        &ep.untracked.egress,
                        Egress,
                        Stage::Untracked,
                        fs_out,
                    ),
                ]);
            }
            if pre_dnat {
                chains.push((
                    C::FromHostPreDnat,
                    &ep.pre_dnat.ingress,
                    Ingress,
                    Stage::PreDnat,
                    fs_in,
                ));
            }
            for (kind, tiers, direction, stage, failsafe) in chains {
                let name = names::endpoint_chain(kind, iface);
                let rules = self.endpoint_chain(tiers, &ep.profiles, direction, stage, failsafe);
                self.chain(name.clone(), rules);
                if iface == "*" {
                    defaults.insert(kind, name);
                } else {
                    maps.entry(kind)
                        .or_default()
                        .insert(iface, Verdict::goto(name));
                }
            }
        }
        let dispatches = [
            (
                EndpointChain::FromHost,
                names::FROM_HOST_DISPATCH,
                Key::Iifname,
            ),
            (EndpointChain::ToHost, names::TO_HOST_DISPATCH, Key::Oifname),
            (
                EndpointChain::FromHostForward,
                names::FROM_HOST_FORWARD_DISPATCH,
                Key::Iifname,
            ),
            (
                EndpointChain::ToHostForward,
                names::TO_HOST_FORWARD_DISPATCH,
                Key::Oifname,
            ),
            (
                EndpointChain::FromHostUntracked,
                names::FROM_HOST_UNTRACKED_DISPATCH,
                Key::Iifname,
            ),
            (
                EndpointChain::ToHostUntracked,
                names::TO_HOST_UNTRACKED_DISPATCH,
                Key::Oifname,
            ),
            (
                EndpointChain::FromHostPreDnat,
                names::FROM_HOST_PRE_DNAT_DISPATCH,
                Key::Iifname,
            ),
        ];
        for (kind, chain, key) in dispatches {
            let present = maps.contains_key(&kind) || defaults.contains_key(&kind);
            if !present {
                continue;
            }
            let otherwise = defaults.get(&kind).map(|c| Rule::new().goto(c.clone()));
            self.dispatch(
                chain,
                key,
                maps.remove(&kind).unwrap_or_default(),
                otherwise,
            );
        }
        let inbound = self.failsafe_rules(&self.dp.failsafe.inbound, Direction::Ingress);
        let outbound = self.failsafe_rules(&self.dp.failsafe.outbound, Direction::Egress);
        self.chain(names::FAILSAFE_IN, inbound);
        self.chain(names::FAILSAFE_OUT, outbound);
    }

    pub(super) fn any_untracked(&self) -> bool {
        self.endpoints
            .host_programs()
            .any(|(_, ep)| !ep.untracked.is_empty())
    }

    pub(super) fn any_pre_dnat(&self) -> bool {
        self.endpoints
            .host_programs()
            .any(|(_, ep)| !ep.pre_dnat.is_empty())
    }

    /// Failsafe ports, grouped by protocol and remote net: one rule each.
    fn failsafe_rules(&self, ports: &[ProtoPort], direction: Direction) -> Vec<Rule> {
        let mut groups: BTreeMap<(u8, Option<ipnet::IpNet>), BTreeSet<u16>> = BTreeMap::new();
        for p in ports {
            if p.net.is_some_and(|n| !self.fam.holds(&n)) {
                continue;
            }
            groups
                .entry((p.protocol, p.net.map(|n| n.trunc())))
                .or_default()
                .insert(p.port);
        }
        let remote = match direction {
            Direction::Ingress => Key::Saddr(self.fam.ip()),
            Direction::Egress => Key::Daddr(self.fam.ip()),
        };
        groups
            .into_iter()
            .map(|((protocol, net), ports)| {
                let mut rule = Rule::new();
                if let Some(net) = net {
                    rule = rule.matching(remote.clone(), Value::net(net));
                }
                let values = Rhs::any_of(ports.iter().map(|p| Value::port(*p)));
                let named = match protocol {
                    6 => Some(PortProto::Tcp),
                    17 => Some(PortProto::Udp),
                    132 => Some(PortProto::Sctp),
                    _ => None,
                };
                rule = match named {
                    Some(proto) => rule.matching(Key::Dport(proto), values),
                    None => rule
                        .matching(Key::Dport(PortProto::Th), values)
                        .matching(Key::L4Proto, Value::Int(protocol.into())),
                };
                rule.accept().comment("failsafe")
            })
            .collect()
    }
}
