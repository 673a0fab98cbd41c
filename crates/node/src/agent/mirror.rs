//! The agent's copy of the policy engine's output, kept up to date from
//! each [`Changes`] instead of taking a whole snapshot on every update:
//! only what changed is copied out of the engine. It also remembers which
//! keys it rewrote since the last generation ([`Dirty`]), so that the
//! ruleset is patched ([`Generator`]) rather than generated whole.

use calico_dataplane::{DataplaneConfig, Dirty, Generation, Generator};
use calico_policy::program::{Dataplane, IpSet};
use calico_policy::{Changes, PolicyEngine};

/// The engine's programs, IP sets and members, as a [`Dataplane`] value.
#[derive(Debug, Default)]
pub struct Mirror {
    pub dataplane: Dataplane,
    /// The keys rewritten since the last generation.
    dirty: Dirty,
    generator: Option<Generator>,
}

impl Mirror {
    /// Applies what one engine call changed (removals first, as the engine
    /// asks).
    pub fn update(&mut self, engine: &PolicyEngine, changes: &Changes) {
        self.dirty.record(changes);
        let dp = &mut self.dataplane;
        for key in &changes.endpoints_removed {
            dp.endpoints.remove(key);
        }
        for key in &changes.policies_removed {
            dp.policies.remove(key);
        }
        for name in &changes.profiles_removed {
            dp.profiles.remove(name);
        }
        for id in &changes.ip_sets_removed {
            dp.ip_sets.remove(id);
        }
        for (id, members) in &changes.ip_set_members_removed {
            if let Some(set) = dp.ip_sets.get_mut(id) {
                for member in members {
                    set.members.remove(member);
                }
            }
        }
        for id in &changes.ip_sets_added {
            if let Some(set) = engine.ip_set(id) {
                dp.ip_sets.insert(id.clone(), set);
            }
        }
        for (id, members) in &changes.ip_set_members_added {
            match dp.ip_sets.get_mut(id) {
                Some(set) => set.members.extend(members.iter().copied()),
                None => {
                    if let Some(set) = engine.ip_set(id) {
                        dp.ip_sets.insert(id.clone(), set);
                    }
                }
            }
        }
        for key in &changes.endpoints_updated {
            if let Some(program) = engine.endpoint_program(key) {
                dp.endpoints.insert(key.clone(), program.clone());
            }
        }
        for key in &changes.policies_updated {
            if let Some(program) = engine.policy_program(key) {
                dp.policies.insert(key.clone(), program.clone());
            }
        }
        for name in &changes.profiles_updated {
            if let Some(program) = engine.profile_program(name) {
                dp.profiles.insert(name.clone(), program.clone());
            }
        }
    }

    /// Starts over from the engine's whole state.
    pub fn reset(&mut self, engine: &PolicyEngine) {
        self.dataplane = engine.snapshot();
        self.dirty = Dirty::everything();
    }

    /// The ruleset for the mirrored state with `config`: the last one with
    /// the chains and sets that depend on what changed since remade (the
    /// same as a whole generation, at the cost of the change).
    pub fn generate(&mut self, config: &DataplaneConfig) -> Generation {
        let generator = self
            .generator
            .get_or_insert_with(|| Generator::new(config.clone()));
        generator.set_config(config.clone());
        let dirty = std::mem::take(&mut self.dirty);
        generator.generate(&self.dataplane, &dirty)
    }

    /// A set as the mirror holds it (for tests and checks).
    pub fn ip_set(&self, id: &calico_policy::IpSetId) -> Option<&IpSet> {
        self.dataplane.ip_sets.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_model::{
        Action, EntityRule, GlobalNetworkPolicy, NetworkSet, ObjectMeta, Profile, Rule,
        WorkloadEndpoint,
    };
    use calico_policy::{EngineConfig, Update};

    fn wep(name: &str, node: &str, ip: &str, app: &str) -> Update {
        let mut w = WorkloadEndpoint {
            metadata: ObjectMeta::namespaced("ns", name),
            ..WorkloadEndpoint::default()
        };
        w.metadata.labels.insert("app".into(), app.into());
        w.spec.node = node.into();
        w.spec.ip_networks = vec![format!("{ip}/32")];
        w.spec.profiles = vec!["kns.ns".into()];
        w.spec.interface_name = format!("cali{name:0>11}");
        w.into()
    }

    fn policy(name: &str, selector: &str, from: &str) -> Update {
        let mut p = GlobalNetworkPolicy {
            metadata: ObjectMeta::named(name),
            ..GlobalNetworkPolicy::default()
        };
        p.spec.selector = selector.into();
        let mut rule = Rule::new(Action::Allow);
        rule.source = EntityRule {
            selector: from.into(),
            ..EntityRule::default()
        };
        p.spec.ingress = vec![rule];
        p.into()
    }

    #[test]
    fn follows_the_engine_through_changes() {
        let mut engine = PolicyEngine::new(EngineConfig {
            local_node: Some("n1".into()),
            ..EngineConfig::default()
        });
        let mut mirror = Mirror::default();
        mirror.reset(&engine);
        let config = DataplaneConfig::default();
        let mut profile = Profile {
            metadata: ObjectMeta::named("kns.ns"),
            ..Profile::default()
        };
        profile.spec.ingress = vec![Rule::new(Action::Allow)];
        let mut netset = NetworkSet {
            metadata: ObjectMeta::namespaced("ns", "ext"),
            ..NetworkSet::default()
        };
        netset.metadata.labels.insert("app".into(), "db".into());
        netset.spec.nets = vec!["192.0.2.0/24".into()];
        let steps: Vec<Update> = vec![
            profile.into(),
            wep("a", "n1", "10.0.0.1", "web"),
            wep("b", "n2", "10.0.0.2", "db"),
            policy("p1", "app == 'web'", "app == 'db'"),
            wep("c", "n2", "10.0.0.3", "db"),
            netset.into(),
            wep("b", "n2", "10.0.0.2", "cache"),
            policy("p2", "app == 'web'", "app == 'cache'"),
            Update::DeleteWorkloadEndpoint {
                namespace: "ns".into(),
                name: "c".into(),
            },
            Update::DeleteGlobalNetworkPolicy { name: "p1".into() },
            wep("d", "n1", "10.0.0.4", "web"),
            Update::DeleteWorkloadEndpoint {
                namespace: "ns".into(),
                name: "a".into(),
            },
        ];
        for (i, update) in steps.into_iter().enumerate() {
            let changes = engine.apply(update).unwrap();
            mirror.update(&engine, &changes);
            assert_eq!(mirror.dataplane, engine.snapshot(), "after step {i}");
            assert_eq!(
                mirror.generate(&config),
                calico_dataplane::generate_with_report(&engine.snapshot(), &config),
                "after step {i}"
            );
        }
        assert_eq!(mirror.dataplane.endpoints.len(), 1);
        assert!(!mirror.dataplane.ip_sets.is_empty());
    }
}
