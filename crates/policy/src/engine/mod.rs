//! The incremental policy engine: resources in, [`Dataplane`] programs and
//! what changed out.
//!
//! Structure (Calico's calculation graph, in one owner):
//! - `policy_index` matches policy selectors against *local* endpoints
//!   (what Calico's active rules calculator does); a policy is active while
//!   it selects at least one, and only active policies are compiled.
//! - `member_index` matches the selectors of active IP sets against *all*
//!   endpoints and network sets, and `ipsets` turns matches into members.
//! - `resolve` orders the policies selecting each dirty endpoint into
//!   tiers (what Calico's policy resolver and sorter do) and publishes what
//!   changed.
//!
//! Every update costs work in proportion to what it touches: the label
//! index only evaluates candidates filed under the right labels, and only
//! endpoints whose matches or policy placement changed are re-resolved.

mod ipsets;
mod resolve;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use calico_model::{NetworkPolicy, Tier};

use crate::compile::{self, SetDef};
use crate::ids::{EndpointKey, IpSetId, ItemKey, NetworkSetKey, PolicyKey, PolicyKind};
use crate::index::{LabelIndex, MatchEvent};
use crate::knp;
use crate::normalize::{
    self, EndpointDef, InvalidResource, NetworkSetDef, PolicyDef, ProfileDef, TierDef,
};
use crate::program::{
    Dataplane, EndpointProgram, Failsafe, IpSet, IpSetMember, PolicyProgram, ProfileProgram,
};
use crate::update::Update;

/// How the engine is set up.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    /// Compute programs only for endpoints on this node (Calico's Felix
    /// hostname). `None`: for every endpoint (explain, tests, tools).
    pub local_node: Option<String>,
    /// Failsafe ports for host endpoints.
    pub failsafe: Failsafe,
}

/// An update the engine refused. The previous version of the resource (if
/// any) stays in force: a typo must not tear down working policy.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("{resource} rejected; any previous version stays in force")]
    Invalid {
        resource: String,
        #[source]
        source: InvalidResource,
    },
    #[error("{resource} rejected; any previous version stays in force")]
    Conversion {
        resource: String,
        #[source]
        source: knp::ConversionError,
    },
}

/// What one call to [`PolicyEngine::apply`] changed. Consumers should
/// handle removals before additions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Endpoints whose program is new or different.
    pub endpoints_updated: BTreeSet<EndpointKey>,
    pub endpoints_removed: BTreeSet<EndpointKey>,
    /// Policies whose program is new (now in use) or different.
    pub policies_updated: BTreeSet<PolicyKey>,
    /// Policies no longer in use (or deleted).
    pub policies_removed: BTreeSet<PolicyKey>,
    pub profiles_updated: BTreeSet<String>,
    pub profiles_removed: BTreeSet<String>,
    /// New IP sets; their members are in `ip_set_members_added`.
    pub ip_sets_added: BTreeSet<IpSetId>,
    pub ip_sets_removed: BTreeSet<IpSetId>,
    pub ip_set_members_added: BTreeMap<IpSetId, BTreeSet<IpSetMember>>,
    pub ip_set_members_removed: BTreeMap<IpSetId, BTreeSet<IpSetMember>>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// A compiled, in-use policy or profile and the IP sets it holds.
#[derive(Debug)]
struct Active<D, P> {
    def: Option<Arc<D>>,
    program: Arc<P>,
    sets: Vec<IpSetId>,
}

/// Work recorded during a batch of updates and settled at its end.
#[derive(Debug, Default)]
struct Pending {
    endpoints: HashSet<EndpointKey>,
    policies_to_check: HashSet<PolicyKey>,
    profiles_to_check: HashSet<String>,
    policies_changed: HashSet<PolicyKey>,
    profiles_changed: HashSet<String>,
    /// Per set touched in the batch: did it exist when the batch began?
    sets_existed: HashMap<IpSetId, bool>,
    member_deltas: HashMap<IpSetId, HashMap<IpSetMember, i64>>,
}

/// The engine. See the [module docs](self).
#[derive(Debug)]
pub struct PolicyEngine {
    config: EngineConfig,
    tiers: HashMap<String, TierDef>,
    policies: HashMap<PolicyKey, Arc<PolicyDef>>,
    tier_policies: HashMap<String, HashSet<PolicyKey>>,
    profiles: HashMap<String, Arc<ProfileDef>>,
    endpoints: HashMap<EndpointKey, Arc<EndpointDef>>,
    network_sets: HashMap<NetworkSetKey, Arc<NetworkSetDef>>,

    policy_index: LabelIndex<EndpointKey, PolicyKey>,
    member_index: LabelIndex<ItemKey, String>,

    active_policies: HashMap<PolicyKey, Active<PolicyDef, PolicyProgram>>,
    active_profiles: HashMap<String, Active<ProfileDef, ProfileProgram>>,
    profile_users: HashMap<String, HashSet<EndpointKey>>,

    ip_sets: HashMap<IpSetId, ipsets::SetState>,
    /// Sets no longer used, oldest first (see `ipsets`).
    idle_sets: VecDeque<IpSetId>,
    selector_sets: HashMap<String, HashSet<IpSetId>>,

    programs: HashMap<EndpointKey, Arc<EndpointProgram>>,
    published_policies: HashMap<PolicyKey, Arc<PolicyProgram>>,
    published_profiles: HashMap<String, Arc<ProfileProgram>>,

    pending: Pending,
}

impl Default for PolicyEngine {
    fn default() -> Self {
        Self::new(EngineConfig::default())
    }
}

impl PolicyEngine {
    pub fn new(config: EngineConfig) -> Self {
        let tiers = normalize::built_in_tiers()
            .into_iter()
            .map(|(n, t)| (n.to_string(), t))
            .collect();
        let mut engine = PolicyEngine {
            config,
            tiers,
            policies: HashMap::new(),
            tier_policies: HashMap::new(),
            profiles: HashMap::new(),
            endpoints: HashMap::new(),
            network_sets: HashMap::new(),
            policy_index: LabelIndex::new(),
            member_index: LabelIndex::new(),
            active_policies: HashMap::new(),
            active_profiles: HashMap::new(),
            profile_users: HashMap::new(),
            ip_sets: HashMap::new(),
            idle_sets: VecDeque::new(),
            selector_sets: HashMap::new(),
            programs: HashMap::new(),
            published_policies: HashMap::new(),
            published_profiles: HashMap::new(),
            pending: Pending::default(),
        };
        engine.set_profile(DEFAULT_ALLOW_PROFILE, Some(default_allow_profile()));
        engine.finalize();
        engine
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Applies one update and returns what changed.
    pub fn apply(&mut self, update: Update) -> Result<Changes, EngineError> {
        let result = self.apply_one(update);
        let changes = self.finalize();
        result.map(|()| changes)
    }

    /// Applies a batch (for example a datastore snapshot) and returns the
    /// combined changes and every refused update.
    pub fn apply_all(
        &mut self,
        updates: impl IntoIterator<Item = Update>,
    ) -> (Changes, Vec<EngineError>) {
        let errors: Vec<EngineError> = updates
            .into_iter()
            .filter_map(|u| self.apply_one(u).err())
            .collect();
        (self.finalize(), errors)
    }

    fn apply_one(&mut self, update: Update) -> Result<(), EngineError> {
        let resource = update.describe();
        let invalid = |source| EngineError::Invalid {
            resource: resource.clone(),
            source,
        };
        match update {
            Update::Tier(t) => self.set_tier(&t.metadata.name, Some(&t)).map_err(invalid)?,
            Update::DeleteTier { name } => self.set_tier(&name, None).map_err(invalid)?,
            Update::NetworkPolicy(p) => {
                let def =
                    normalize::network_policy(&p, PolicyKind::NetworkPolicy).map_err(invalid)?;
                self.set_policy(def.key.clone(), Some(def));
            }
            Update::DeleteNetworkPolicy { namespace, name } => {
                self.set_policy(PolicyKey::network_policy(namespace, name), None)
            }
            Update::GlobalNetworkPolicy(p) => {
                let def = normalize::global_network_policy(&p).map_err(invalid)?;
                self.set_policy(def.key.clone(), Some(def));
            }
            Update::DeleteGlobalNetworkPolicy { name } => {
                self.set_policy(PolicyKey::global(name), None)
            }
            Update::KubernetesNetworkPolicy(p) => {
                let converted = knp::convert(&p).map_err(|source| EngineError::Conversion {
                    resource: resource.clone(),
                    source,
                })?;
                let def = kubernetes_policy(&converted.policy).map_err(invalid)?;
                self.set_policy(def.key.clone(), Some(def));
            }
            Update::DeleteKubernetesNetworkPolicy { namespace, name } => {
                self.set_policy(PolicyKey::kubernetes(namespace, name), None)
            }
            Update::Profile(p) => {
                let def = normalize::profile(&p).map_err(invalid)?;
                self.set_profile(&p.metadata.name, Some(def));
            }
            // Calico recreates its allow-all profile; deleting it restores it.
            Update::DeleteProfile { name } if name == DEFAULT_ALLOW_PROFILE => {
                self.set_profile(&name, Some(default_allow_profile()))
            }
            Update::DeleteProfile { name } => self.set_profile(&name, None),
            Update::NetworkSet(n) => {
                let def = normalize::network_set(&n).map_err(invalid)?;
                self.set_network_set(def.key.clone(), Some(def));
            }
            Update::DeleteNetworkSet { namespace, name } => {
                self.set_network_set(NetworkSetKey::Namespaced { namespace, name }, None)
            }
            Update::GlobalNetworkSet(n) => {
                let def = normalize::global_network_set(&n).map_err(invalid)?;
                self.set_network_set(def.key.clone(), Some(def));
            }
            Update::DeleteGlobalNetworkSet { name } => {
                self.set_network_set(NetworkSetKey::Global { name }, None)
            }
            Update::HostEndpoint(h) => {
                let def = normalize::host_endpoint(&h).map_err(invalid)?;
                self.set_endpoint(def.key.clone(), Some(def));
            }
            Update::DeleteHostEndpoint { name } => self.set_endpoint(EndpointKey::host(name), None),
            Update::WorkloadEndpoint(w) => {
                let key = EndpointKey::workload(&w.metadata.namespace, &w.metadata.name);
                let def = normalize::workload_endpoint(&w).map_err(invalid)?;
                self.set_endpoint(key, def);
            }
            Update::DeleteWorkloadEndpoint { namespace, name } => {
                self.set_endpoint(EndpointKey::workload(namespace, name), None)
            }
        }
        self.settle_active_rules();
        Ok(())
    }

    fn is_local(&self, def: &EndpointDef) -> bool {
        self.config
            .local_node
            .as_ref()
            .is_none_or(|n| *n == def.node)
    }

    // ----- tiers -----

    fn set_tier(&mut self, name: &str, tier: Option<&Tier>) -> Result<(), InvalidResource> {
        let new = match tier {
            Some(t) => Some(normalize::tier(t)?),
            // Built-in tiers cannot be deleted: Calico recreates them.
            None => normalize::built_in_tiers()
                .into_iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t),
        };
        let old = self.tiers.get(name).copied();
        if old == new {
            return Ok(());
        }
        match new {
            Some(t) => self.tiers.insert(name.to_string(), t),
            None => self.tiers.remove(name),
        };
        for policy in self.tier_policies.get(name).into_iter().flatten() {
            self.pending
                .endpoints
                .extend(self.policy_index.selector_matches(policy).cloned());
        }
        Ok(())
    }

    // ----- policies -----

    fn set_policy(&mut self, key: PolicyKey, def: Option<PolicyDef>) {
        let old = self.policies.get(&key).cloned();
        if old.as_deref() == def.as_ref() {
            return;
        }
        let mut events = Vec::new();
        if let Some(old) = &old {
            if let Some(set) = self.tier_policies.get_mut(&old.tier) {
                set.remove(&key);
                if set.is_empty() {
                    self.tier_policies.remove(&old.tier);
                }
            }
        }
        match def {
            Some(def) => {
                self.tier_policies
                    .entry(def.tier.clone())
                    .or_default()
                    .insert(key.clone());
                let def = Arc::new(def);
                self.policies.insert(key.clone(), def.clone());
                self.policy_index
                    .update_selector(key.clone(), def.selector.clone(), &mut events);
                if old.as_ref().is_some_and(|o| !o.same_placement(&def)) {
                    self.pending
                        .endpoints
                        .extend(self.policy_index.selector_matches(&key).cloned());
                }
            }
            None => {
                self.policies.remove(&key);
                self.policy_index.delete_selector(&key, &mut events);
            }
        }
        self.pending.policies_to_check.insert(key);
        self.on_policy_matches(events);
    }

    fn on_policy_matches(&mut self, events: Vec<MatchEvent<EndpointKey, PolicyKey>>) {
        for e in events {
            let (MatchEvent::Started { selector, item } | MatchEvent::Stopped { selector, item }) =
                e;
            self.pending.endpoints.insert(item);
            self.pending.policies_to_check.insert(selector);
        }
    }

    // ----- profiles -----

    fn set_profile(&mut self, name: &str, def: Option<ProfileDef>) {
        let old = self.profiles.get(name).cloned();
        if old.as_deref() == def.as_ref() {
            return;
        }
        let mut policy_events = Vec::new();
        let mut member_events = Vec::new();
        match &def {
            Some(d) => {
                self.policy_index
                    .update_parent(name, &d.labels, &mut policy_events);
                self.member_index
                    .update_parent(name, &d.labels, &mut member_events);
            }
            None => {
                self.policy_index.delete_parent(name, &mut policy_events);
                self.member_index.delete_parent(name, &mut member_events);
            }
        }
        match def {
            Some(d) => self.profiles.insert(name.to_string(), Arc::new(d)),
            None => self.profiles.remove(name),
        };
        self.pending.profiles_to_check.insert(name.to_string());
        self.on_policy_matches(policy_events);
        self.on_member_matches(member_events);
    }

    // ----- endpoints and network sets -----

    fn set_endpoint(&mut self, key: EndpointKey, def: Option<EndpointDef>) {
        let old = self.endpoints.get(&key).cloned();
        if old.as_deref() == def.as_ref() {
            return;
        }
        let def = def.map(Arc::new);
        let item = ItemKey::Endpoint(key.clone());
        self.move_item_members(
            &item,
            old.as_deref().map(ipsets::Contributor::Endpoint),
            def.as_deref()
                .map(|d| (ipsets::Contributor::Endpoint(d), &d.labels, &d.profiles)),
        );

        let was_local = old.as_deref().is_some_and(|d| self.is_local(d));
        let is_local = def.as_deref().is_some_and(|d| self.is_local(d));
        let mut events = Vec::new();
        match &def {
            Some(d) if is_local => {
                self.policy_index
                    .update_item(key.clone(), &d.labels, &d.profiles, &mut events)
            }
            _ if was_local => self.policy_index.delete_item(&key, &mut events),
            _ => {}
        }
        self.on_policy_matches(events);

        if was_local {
            for p in &old.as_deref().expect("was local").profiles {
                if let Some(users) = self.profile_users.get_mut(p) {
                    users.remove(&key);
                    if users.is_empty() {
                        self.profile_users.remove(p);
                    }
                }
                self.pending.profiles_to_check.insert(p.clone());
            }
        }
        if is_local {
            for p in &def.as_deref().expect("is local").profiles {
                self.profile_users
                    .entry(p.clone())
                    .or_default()
                    .insert(key.clone());
                self.pending.profiles_to_check.insert(p.clone());
            }
        }
        match def {
            Some(d) => self.endpoints.insert(key.clone(), d),
            None => self.endpoints.remove(&key),
        };
        self.pending.endpoints.insert(key);
    }

    fn set_network_set(&mut self, key: NetworkSetKey, def: Option<NetworkSetDef>) {
        let old = self.network_sets.get(&key).cloned();
        if old.as_deref() == def.as_ref() {
            return;
        }
        let item = ItemKey::NetworkSet(key.clone());
        self.move_item_members(
            &item,
            old.as_deref().map(ipsets::Contributor::NetworkSet),
            def.as_ref()
                .map(|d| (ipsets::Contributor::NetworkSet(d), &d.labels, &d.parents)),
        );
        match def {
            Some(d) => self.network_sets.insert(key, Arc::new(d)),
            None => self.network_sets.remove(&key),
        };
    }

    // ----- active policies and profiles -----

    /// Compiles policies and profiles that came into use or changed, and
    /// releases those no longer used, so IP set references are current.
    fn settle_active_rules(&mut self) {
        for key in std::mem::take(&mut self.pending.policies_to_check) {
            let def = self
                .policies
                .get(&key)
                .filter(|_| self.policy_index.selector_matches(&key).next().is_some())
                .cloned();
            let current = self.active_policies.get(&key).and_then(|a| a.def.clone());
            match (def, current) {
                (Some(d), Some(c)) if Arc::ptr_eq(&d, &c) => {}
                (Some(d), _) => {
                    let (program, sets) = compile::compile_policy(&d);
                    let ids = self.ref_sets(sets.sets);
                    let old = self.active_policies.insert(
                        key.clone(),
                        Active {
                            def: Some(d),
                            program: Arc::new(program),
                            sets: ids,
                        },
                    );
                    if let Some(old) = old {
                        self.deref_sets(&old.sets);
                    }
                    self.pending.policies_changed.insert(key);
                }
                (None, _) => {
                    if let Some(old) = self.active_policies.remove(&key) {
                        self.deref_sets(&old.sets);
                        self.pending.policies_changed.insert(key);
                    }
                }
            }
        }
        for name in std::mem::take(&mut self.pending.profiles_to_check) {
            let used = self.profile_users.contains_key(&name);
            let def = self.profiles.get(&name).cloned();
            let current = self.active_profiles.get(&name);
            let unchanged = match (&def, current) {
                (Some(d), Some(c)) => c.def.as_ref().is_some_and(|cd| Arc::ptr_eq(d, cd)),
                (None, Some(c)) => c.def.is_none(),
                (_, None) => false,
            };
            if used && unchanged {
                continue;
            }
            if used {
                let (program, sets) = compile::compile_profile(&name, def.as_deref());
                let ids = self.ref_sets(sets.sets);
                let old = self.active_profiles.insert(
                    name.clone(),
                    Active {
                        def,
                        program: Arc::new(program),
                        sets: ids,
                    },
                );
                if let Some(old) = old {
                    self.deref_sets(&old.sets);
                }
                self.pending.profiles_changed.insert(name);
            } else if let Some(old) = self.active_profiles.remove(&name) {
                self.deref_sets(&old.sets);
                self.pending.profiles_changed.insert(name);
            }
        }
    }

    fn ref_sets(&mut self, sets: Vec<(IpSetId, SetDef)>) -> Vec<IpSetId> {
        sets.into_iter()
            .map(|(id, def)| {
                self.ref_set(&id, def);
                id
            })
            .collect()
    }

    fn deref_sets(&mut self, ids: &[IpSetId]) {
        for id in ids {
            self.deref_set(id);
        }
    }

    // ----- queries -----

    /// The program of a local endpoint.
    pub fn endpoint_program(&self, key: &EndpointKey) -> Option<&EndpointProgram> {
        self.programs.get(key).map(|p| &**p)
    }

    /// The program of a policy some local endpoint uses.
    pub fn policy_program(&self, key: &PolicyKey) -> Option<&PolicyProgram> {
        self.published_policies.get(key).map(|p| &**p)
    }

    /// The program of a profile some local endpoint names.
    pub fn profile_program(&self, name: &str) -> Option<&ProfileProgram> {
        self.published_profiles.get(name).map(|p| &**p)
    }

    /// An IP set in use, with its members.
    pub fn ip_set(&self, id: &IpSetId) -> Option<IpSet> {
        self.ip_sets.get(id).filter(|s| s.refs > 0).map(|s| IpSet {
            kind: s.def.kind(),
            members: s.members.keys().copied().collect(),
        })
    }

    /// The local endpoints a policy selects.
    pub fn endpoints_selected_by(&self, policy: &PolicyKey) -> BTreeSet<EndpointKey> {
        self.policy_index
            .selector_matches(policy)
            .cloned()
            .collect()
    }

    /// Everything a dataplane needs, as one owned value.
    pub fn snapshot(&self) -> Dataplane {
        Dataplane {
            endpoints: self
                .programs
                .iter()
                .map(|(k, v)| (k.clone(), (**v).clone()))
                .collect(),
            policies: self
                .published_policies
                .iter()
                .map(|(k, v)| (k.clone(), (**v).clone()))
                .collect(),
            profiles: self
                .published_profiles
                .iter()
                .map(|(k, v)| (k.clone(), (**v).clone()))
                .collect(),
            ip_sets: self
                .ip_sets
                .keys()
                .filter_map(|id| Some((id.clone(), self.ip_set(id)?)))
                .collect(),
            failsafe: self.config.failsafe.clone(),
        }
    }

    /// Sizes, for monitoring and benchmarks.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            endpoints: self.endpoints.len(),
            local_endpoints: self.programs.len(),
            network_sets: self.network_sets.len(),
            policies: self.policies.len(),
            active_policies: self.active_policies.len(),
            ip_sets: self.ip_sets.values().filter(|s| s.refs > 0).count(),
            ip_set_members: self
                .ip_sets
                .values()
                .filter(|s| s.refs > 0)
                .map(|s| s.members.len())
                .sum(),
            scan_selectors: self.policy_index.scan_selector_count()
                + self.member_index.scan_selector_count(),
        }
    }
}

/// Counts of what the engine holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineStats {
    pub endpoints: usize,
    pub local_endpoints: usize,
    pub network_sets: usize,
    pub policies: usize,
    pub active_policies: usize,
    pub ip_sets: usize,
    pub ip_set_members: usize,
    /// Selectors evaluated against every changed item (no required label).
    pub scan_selectors: usize,
}

/// Name of the allow-all profile Calico always provides.
pub const DEFAULT_ALLOW_PROFILE: &str = "projectcalico-default-allow";

/// Calico's allow-all profile, which host endpoints name to allow traffic
/// in the absence of policy.
fn default_allow_profile() -> ProfileDef {
    let allow_all = calico_model::Profile {
        metadata: calico_model::ObjectMeta::named(DEFAULT_ALLOW_PROFILE),
        spec: calico_model::ProfileSpec {
            ingress: vec![calico_model::Rule::new(calico_model::Action::Allow)],
            egress: vec![calico_model::Rule::new(calico_model::Action::Allow)],
            ..Default::default()
        },
    };
    normalize::profile(&allow_all).expect("built-in profile is valid")
}

fn kubernetes_policy(p: &NetworkPolicy) -> Result<PolicyDef, InvalidResource> {
    normalize::network_policy(p, PolicyKind::KubernetesNetworkPolicy)
}
