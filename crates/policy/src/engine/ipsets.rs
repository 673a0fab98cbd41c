//! IP set membership: which addresses each in-use set holds, kept current
//! as selectors start and stop matching endpoints and network sets (what
//! Calico's IP set member index and named-port index do).
//!
//! Members are reference counted, because two items may contribute the
//! same address; a member appears when its first contributor does and
//! disappears with its last.
//!
//! A set whose last user goes away is reported removed but kept, idle and
//! still maintained, for a while ([`IDLE_SETS`] of them): a pod restarting
//! on a node deactivates and reactivates its policies, and rebuilding a
//! broad set (a named port over `all()` scans every endpoint) each time
//! would make one restart cost as much as the cluster is large.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::compile::SetDef;
use crate::ids::{IpSetId, ItemKey};
use crate::index::MatchEvent;
use crate::normalize::{EndpointDef, NetworkSetDef};
use crate::program::IpSetMember;

use super::PolicyEngine;

/// How many unused sets are kept, oldest dropped first.
pub(super) const IDLE_SETS: usize = 256;

#[derive(Debug)]
pub(super) struct SetState {
    pub def: SetDef,
    /// Policies and profiles using the set.
    pub refs: usize,
    pub members: HashMap<IpSetMember, u32>,
}

/// Something whose addresses can go into sets.
#[derive(Debug, Clone, Copy)]
pub(super) enum Contributor<'a> {
    Endpoint(&'a EndpointDef),
    NetworkSet(&'a NetworkSetDef),
}

enum OwnedContributor {
    Endpoint(Arc<EndpointDef>),
    NetworkSet(Arc<NetworkSetDef>),
}

impl OwnedContributor {
    fn borrow(&self) -> Contributor<'_> {
        match self {
            OwnedContributor::Endpoint(d) => Contributor::Endpoint(d),
            OwnedContributor::NetworkSet(d) => Contributor::NetworkSet(d),
        }
    }
}

/// The members `item` contributes to a set it is matched by.
fn contributions(def: &SetDef, item: Contributor<'_>) -> Vec<IpSetMember> {
    match (def, item) {
        (SetDef::Selector(_), Contributor::Endpoint(e)) => {
            e.nets.iter().map(|n| IpSetMember::Net(*n)).collect()
        }
        (SetDef::Selector(_), Contributor::NetworkSet(n)) => {
            n.nets.iter().map(|n| IpSetMember::Net(*n)).collect()
        }
        (SetDef::NamedPort { protocol, name, .. }, Contributor::Endpoint(e)) => e
            .named_ports
            .iter()
            .filter(|p| p.name == *name && protocol.admits(p.protocol))
            .flat_map(|p| {
                e.nets.iter().map(move |n| IpSetMember::IpPort {
                    addr: n.addr(),
                    protocol: p.protocol,
                    port: p.port,
                })
            })
            .collect(),
        (SetDef::NamedPort { .. }, Contributor::NetworkSet(_)) | (SetDef::Nets(_), _) => Vec::new(),
    }
}

impl PolicyEngine {
    /// Whether a set is in use (idle sets do not count).
    pub(super) fn set_in_use(&self, id: &IpSetId) -> bool {
        self.ip_sets.get(id).is_some_and(|s| s.refs > 0)
    }

    /// Records, on first touch in a batch, whether the set was in use when
    /// the batch began.
    fn touch_set(&mut self, id: &IpSetId) {
        let exists = self.set_in_use(id);
        self.touch_set_was(id, exists);
    }

    /// Counts every current member as added (`sign` 1) or removed (-1) in
    /// the batch's deltas: a set coming into or going out of use.
    fn count_all_members(&mut self, id: &IpSetId, sign: i64) {
        let Some(set) = self.ip_sets.get(id) else {
            return;
        };
        let deltas = self.pending.member_deltas.entry(id.clone()).or_default();
        for m in set.members.keys() {
            *deltas.entry(*m).or_insert(0) += sign;
        }
    }

    fn add_member(&mut self, id: &IpSetId, member: IpSetMember) {
        let Some(set) = self.ip_sets.get_mut(id) else {
            return;
        };
        let count = set.members.entry(member).or_insert(0);
        *count += 1;
        if *count == 1 {
            *self
                .pending
                .member_deltas
                .entry(id.clone())
                .or_default()
                .entry(member)
                .or_insert(0) += 1;
        }
    }

    fn remove_member(&mut self, id: &IpSetId, member: IpSetMember) {
        let Some(set) = self.ip_sets.get_mut(id) else {
            return;
        };
        let Some(count) = set.members.get_mut(&member) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            set.members.remove(&member);
            *self
                .pending
                .member_deltas
                .entry(id.clone())
                .or_default()
                .entry(member)
                .or_insert(0) -= 1;
        }
    }

    /// Applies `item`'s contributions to every set whose selector `uid`
    /// names, adding or removing.
    fn contribute(&mut self, uid: &str, item: Contributor<'_>, add: bool) {
        let Some(sets) = self.selector_sets.get(uid) else {
            return;
        };
        let work: Vec<(IpSetId, Vec<IpSetMember>)> = sets
            .iter()
            .map(|id| (id.clone(), contributions(&self.ip_sets[id].def, item)))
            .collect();
        for (id, members) in work {
            if !members.is_empty() {
                self.touch_set(&id);
            }
            for m in members {
                if add {
                    self.add_member(&id, m);
                } else {
                    self.remove_member(&id, m);
                }
            }
        }
    }

    /// Takes a reference on a set, creating and populating it if new.
    pub(super) fn ref_set(&mut self, id: &IpSetId, def: SetDef) {
        if let Some(set) = self.ip_sets.get_mut(id) {
            set.refs += 1;
            if set.refs == 1 {
                // Back from idle, members intact.
                self.touch_set_was(id, false);
                self.idle_sets.retain(|i| i != id);
                self.count_all_members(id, 1);
            }
            return;
        }
        self.touch_set(id);
        let selector = def.selector().cloned();
        let static_members = match &def {
            SetDef::Nets(nets) => nets.iter().map(|n| IpSetMember::Net(*n)).collect(),
            _ => Vec::new(),
        };
        self.ip_sets.insert(
            id.clone(),
            SetState {
                def,
                refs: 1,
                members: HashMap::new(),
            },
        );
        for m in static_members {
            self.add_member(id, m);
        }
        let Some(selector) = selector else { return };
        let uid = selector.unique_id();
        let users = self.selector_sets.entry(uid.clone()).or_default();
        let new_selector = users.is_empty();
        users.insert(id.clone());
        if new_selector {
            let mut events = Vec::new();
            self.member_index
                .update_selector(uid, selector, &mut events);
            self.on_member_matches(events);
        } else {
            let items: Vec<ItemKey> = self.member_index.selector_matches(&uid).cloned().collect();
            let set_def = self.ip_sets[id].def.clone();
            for item in items {
                if let Some(owned) = self.contributor(&item) {
                    for m in contributions(&set_def, owned.borrow()) {
                        self.add_member(id, m);
                    }
                }
            }
        }
    }

    /// As [`Self::touch_set`], when the caller knows the answer.
    fn touch_set_was(&mut self, id: &IpSetId, in_use: bool) {
        self.pending
            .sets_existed
            .entry(id.clone())
            .or_insert(in_use);
    }

    /// Drops a reference on a set; with the last, the set goes idle.
    pub(super) fn deref_set(&mut self, id: &IpSetId) {
        let Some(set) = self.ip_sets.get_mut(id) else {
            return;
        };
        set.refs -= 1;
        if set.refs > 0 {
            return;
        }
        self.touch_set_was(id, true);
        self.count_all_members(id, -1);
        self.idle_sets.push_back(id.clone());
        while self.idle_sets.len() > IDLE_SETS {
            let oldest = self.idle_sets.pop_front().expect("non-empty");
            self.drop_set(&oldest);
        }
    }

    /// Forgets an idle set entirely.
    fn drop_set(&mut self, id: &IpSetId) {
        if self.set_in_use(id) {
            return;
        }
        let Some(state) = self.ip_sets.remove(id) else {
            return;
        };
        if let Some(selector) = state.def.selector() {
            let uid = selector.unique_id();
            if let Some(users) = self.selector_sets.get_mut(&uid) {
                users.remove(id);
                if users.is_empty() {
                    self.selector_sets.remove(&uid);
                    let mut ignored = Vec::new();
                    self.member_index.delete_selector(&uid, &mut ignored);
                }
            }
        }
    }

    fn contributor(&self, item: &ItemKey) -> Option<OwnedContributor> {
        match item {
            ItemKey::Endpoint(k) => self
                .endpoints
                .get(k)
                .cloned()
                .map(OwnedContributor::Endpoint),
            ItemKey::NetworkSet(k) => self
                .network_sets
                .get(k)
                .cloned()
                .map(OwnedContributor::NetworkSet),
        }
    }

    /// Turns selector match changes into member changes (items unchanged).
    pub(super) fn on_member_matches(&mut self, events: Vec<MatchEvent<ItemKey, String>>) {
        for e in events {
            let (uid, item, add) = match e {
                MatchEvent::Started { selector, item } => (selector, item, true),
                MatchEvent::Stopped { selector, item } => (selector, item, false),
            };
            if let Some(owned) = self.contributor(&item) {
                self.contribute(&uid, owned.borrow(), add);
            }
        }
    }

    /// Replaces an item (or removes it, `new == None`): takes its old
    /// members out of every set matching it, re-files its labels, and puts
    /// its new members into every set matching it now.
    pub(super) fn move_item_members(
        &mut self,
        item: &ItemKey,
        old: Option<Contributor<'_>>,
        new: Option<(Contributor<'_>, &BTreeMap<String, String>, &Vec<String>)>,
    ) {
        if let Some(old) = old {
            let uids: Vec<String> = self.member_index.item_matches(item).cloned().collect();
            for uid in uids {
                self.contribute(&uid, old, false);
            }
        }
        let mut ignored = Vec::new();
        match &new {
            Some((_, labels, parents)) => {
                self.member_index
                    .update_item(item.clone(), *labels, parents.iter(), &mut ignored)
            }
            None => self.member_index.delete_item(item, &mut ignored),
        }
        if let Some((c, ..)) = new {
            let uids: Vec<String> = self.member_index.item_matches(item).cloned().collect();
            for uid in uids {
                self.contribute(&uid, c, true);
            }
        }
    }
}
