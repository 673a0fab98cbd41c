//! Ordering the policies that select an endpoint into tiers (what Calico's
//! policy resolver and policy sorter do), and publishing a batch's changes.
//!
//! Tiers sort by `order` (a tier without one after those with one), then
//! name; a tier that policies name but that does not exist sorts after all
//! existing tiers and denies by default. Policies in a tier sort by `order`
//! (none = last), then by the text `name/namespace/kind`.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::Arc;

use crate::normalize::{EndpointDef, PolicyDef, TierDef};
use crate::program::{Chains, EndpointProgram, IpSetMember, TierAction, TierProgram};

use super::{Changes, PolicyEngine};

/// Calico's `TierLess`.
fn tier_cmp(a: (&str, Option<&TierDef>), b: (&str, Option<&TierDef>)) -> Ordering {
    let valid = |t: Option<&TierDef>| t.is_some();
    let order = |t: Option<&TierDef>| t.and_then(|t| t.order);
    valid(b.1)
        .cmp(&valid(a.1))
        .then_with(|| match (order(a.1), order(b.1)) {
            (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then_with(|| a.0.cmp(b.0))
}

/// Calico's `PolKVLess`.
fn policy_cmp(a: &PolicyDef, b: &PolicyDef) -> Ordering {
    a.order
        .partial_cmp(&b.order)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a.tie_break.cmp(&b.tie_break))
}

fn push_tier(
    chains: &mut Chains,
    name: &str,
    action: TierAction,
    policies: &[&PolicyDef],
    egress_allowed: bool,
) {
    let ingress: Vec<_> = policies
        .iter()
        .filter(|p| p.ingress)
        .map(|p| p.key.clone())
        .collect();
    let egress: Vec<_> = policies
        .iter()
        .filter(|p| egress_allowed && p.egress)
        .map(|p| p.key.clone())
        .collect();
    if !ingress.is_empty() {
        chains.ingress.push(TierProgram {
            name: name.to_string(),
            default_action: action,
            policies: ingress,
        });
    }
    if !egress.is_empty() {
        chains.egress.push(TierProgram {
            name: name.to_string(),
            default_action: action,
            policies: egress,
        });
    }
}

impl PolicyEngine {
    /// The program for a local endpoint from the policies now selecting it.
    pub(super) fn compute_program(&self, def: &EndpointDef) -> EndpointProgram {
        let mut policies: Vec<&PolicyDef> = self
            .policy_index
            .item_matches(&def.key)
            .filter_map(|k| self.policies.get(k).map(|p| &**p))
            .collect();
        policies.sort_by(|a, b| {
            tier_cmp(
                (&a.tier, self.tiers.get(&a.tier)),
                (&b.tier, self.tiers.get(&b.tier)),
            )
            .then_with(|| policy_cmp(a, b))
        });

        let mut normal = Chains::default();
        let mut untracked = Chains::default();
        let mut pre_dnat = Chains::default();
        let mut forward = Chains::default();
        let host = def.key.is_host();
        for group in policies.chunk_by(|a, b| a.tier == b.tier) {
            let tier = &group[0].tier;
            let action = self
                .tiers
                .get(tier)
                .map_or(TierAction::Deny, |t| t.default_action);
            let pick = |f: &dyn Fn(&PolicyDef) -> bool| -> Vec<&PolicyDef> {
                group.iter().copied().filter(|p| f(p)).collect()
            };
            // doNotTrack and preDNAT policies only ever apply to host
            // endpoints, in their own chains, and never in the normal one.
            let ordinary = pick(&|p| !p.do_not_track && !p.pre_dnat);
            push_tier(&mut normal, tier, action, &ordinary, true);
            if host {
                push_tier(
                    &mut untracked,
                    tier,
                    TierAction::Pass,
                    &pick(&|p| p.do_not_track),
                    true,
                );
                push_tier(
                    &mut pre_dnat,
                    tier,
                    TierAction::Pass,
                    &pick(&|p| !p.do_not_track && p.pre_dnat),
                    false,
                );
                let fwd = pick(&|p| !p.do_not_track && !p.pre_dnat && p.apply_on_forward);
                push_tier(&mut forward, tier, action, &fwd, true);
            }
        }
        EndpointProgram {
            key: def.key.clone(),
            interface_name: def.interface_name.clone(),
            addresses: def.nets.clone(),
            normal,
            untracked,
            pre_dnat,
            forward,
            profiles: def.profiles.clone(),
        }
    }

    /// Settles the batch: recomputes dirty endpoint programs, publishes
    /// policy and profile programs, and reports IP set changes.
    pub(super) fn finalize(&mut self) -> Changes {
        self.settle_active_rules();
        let pending = std::mem::take(&mut self.pending);
        let mut changes = Changes::default();

        for key in pending.endpoints {
            let program = self
                .endpoints
                .get(&key)
                .filter(|d| self.is_local(d))
                .map(|d| self.compute_program(d));
            match (program, self.programs.get(&key)) {
                (Some(p), Some(old)) if **old == p => {}
                (Some(p), _) => {
                    self.programs.insert(key.clone(), Arc::new(p));
                    changes.endpoints_updated.insert(key);
                }
                (None, Some(_)) => {
                    self.programs.remove(&key);
                    changes.endpoints_removed.insert(key);
                }
                (None, None) => {}
            }
        }

        for key in pending.policies_changed {
            let now = self.active_policies.get(&key).map(|a| a.program.clone());
            match (now, self.published_policies.get(&key)) {
                (Some(p), Some(old)) if *p == **old => {}
                (Some(p), _) => {
                    self.published_policies.insert(key.clone(), p);
                    changes.policies_updated.insert(key);
                }
                (None, Some(_)) => {
                    self.published_policies.remove(&key);
                    changes.policies_removed.insert(key);
                }
                (None, None) => {}
            }
        }

        for name in pending.profiles_changed {
            let now = self.active_profiles.get(&name).map(|a| a.program.clone());
            match (now, self.published_profiles.get(&name)) {
                (Some(p), Some(old)) if *p == **old => {}
                (Some(p), _) => {
                    self.published_profiles.insert(name.clone(), p);
                    changes.profiles_updated.insert(name);
                }
                (None, Some(_)) => {
                    self.published_profiles.remove(&name);
                    changes.profiles_removed.insert(name);
                }
                (None, None) => {}
            }
        }

        let mut deltas = pending.member_deltas;
        for (id, existed) in pending.sets_existed {
            let exists = self.ip_sets.get(&id).filter(|s| s.refs > 0);
            match (existed, exists) {
                (false, Some(set)) => {
                    changes.ip_sets_added.insert(id.clone());
                    if !set.members.is_empty() {
                        changes
                            .ip_set_members_added
                            .insert(id, set.members.keys().copied().collect());
                    }
                }
                (true, None) => {
                    changes.ip_sets_removed.insert(id);
                }
                (true, Some(_)) => {
                    let Some(d) = deltas.remove(&id) else {
                        continue;
                    };
                    let added: BTreeSet<IpSetMember> =
                        d.iter().filter(|(_, n)| **n > 0).map(|(m, _)| *m).collect();
                    let removed: BTreeSet<IpSetMember> =
                        d.iter().filter(|(_, n)| **n < 0).map(|(m, _)| *m).collect();
                    if !added.is_empty() {
                        changes.ip_set_members_added.insert(id.clone(), added);
                    }
                    if !removed.is_empty() {
                        changes.ip_set_members_removed.insert(id, removed);
                    }
                }
                (false, None) => {}
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(order: Option<f64>) -> TierDef {
        TierDef {
            order,
            default_action: TierAction::Deny,
        }
    }

    #[test]
    fn tier_order_table() {
        let a = t(Some(10.0));
        let b = t(Some(20.0));
        let none = t(None);
        // (left, right, expected)
        let cases = [
            (("x", Some(&a)), ("y", Some(&b)), Ordering::Less),
            (("y", Some(&b)), ("x", Some(&a)), Ordering::Greater),
            (("b", Some(&a)), ("a", Some(&a)), Ordering::Greater),
            (("a", Some(&none)), ("z", Some(&b)), Ordering::Greater),
            (("a", Some(&none)), ("b", Some(&none)), Ordering::Less),
            (("a", None), ("z", Some(&none)), Ordering::Greater),
            (("a", None), ("b", None), Ordering::Less),
        ];
        for (l, r, want) in cases {
            assert_eq!(tier_cmp(l, r), want, "{:?} vs {:?}", l.0, r.0);
        }
    }
}
