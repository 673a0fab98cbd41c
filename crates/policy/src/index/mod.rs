//! Incremental matching of many selectors against many labelled items, with
//! label inheritance from parents: what Calico calls the label index
//! (`InheritIndex` plus its label-restriction index).
//!
//! Items are endpoints and network sets; parents are profiles, whose
//! `labelsToApply` an item inherits (its own labels win, then its parents in
//! the order it names them). The index reports when a selector starts or
//! stops matching an item.
//!
//! Cost: each change evaluates only the selectors or items it can affect.
//! A selector is filed under one label it requires (`a == 'x'` under
//! `a=x`, `has(a)` under `a`); an item is filed under each of its
//! (inherited) labels. Updating an item evaluates the selectors filed under
//! its labels plus the few that require no label (`all()`, `!has(a)`: the
//! "scan" bucket); updating a selector evaluates the items carrying its
//! label.

mod interner;
mod slab;

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use calico_selector::{Labels, Selector};

use interner::{Interner, Sym};
use slab::{Slab, SlotSet};

/// A change in what matches what.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MatchEvent<I, S> {
    /// `selector` now matches `item`.
    Started { selector: S, item: I },
    /// `selector` no longer matches `item`.
    Stopped { selector: S, item: I },
}

/// Sorted `(key, value)` pairs.
type LabelVec = Box<[(Sym, Sym)]>;

#[derive(Debug)]
struct ItemData<I> {
    id: I,
    labels: LabelVec,
    parents: Box<[u32]>,
    matches: SlotSet,
}

#[derive(Debug)]
struct ParentData {
    name: Sym,
    labels: LabelVec,
    items: SlotSet,
    /// Whether the parent has been defined (as opposed to only named by an
    /// item).
    defined: bool,
}

/// Where a selector is filed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Placement {
    /// The selector's restrictions contradict each other: it matches nothing.
    Never,
    /// No label is required: every item is a candidate.
    Scan,
    /// Items carrying this label, whatever the value.
    Key(Sym),
    /// Items carrying this label with one of these values.
    Values(Sym, Box<[Sym]>),
}

#[derive(Debug)]
struct SelectorData<S> {
    id: S,
    selector: Selector,
    placement: Placement,
    matches: SlotSet,
}

#[derive(Debug, Default)]
struct ItemsWithKey {
    all: SlotSet,
    by_value: HashMap<Sym, SlotSet>,
}

#[derive(Debug, Default)]
struct SelectorsOnKey {
    any_value: SlotSet,
    by_value: HashMap<Sym, SlotSet>,
}

impl SelectorsOnKey {
    fn is_empty(&self) -> bool {
        self.any_value.is_empty() && self.by_value.is_empty()
    }
}

/// The label index. `I` identifies items, `S` selectors; both are cloned
/// only into events.
#[derive(Debug)]
pub struct LabelIndex<I, S> {
    interner: Interner,
    items: Slab<ItemData<I>>,
    item_slots: HashMap<I, u32>,
    parents: Slab<ParentData>,
    parent_slots: HashMap<Sym, u32>,
    selectors: Slab<SelectorData<S>>,
    selector_slots: HashMap<S, u32>,
    items_by_key: HashMap<Sym, ItemsWithKey>,
    selectors_by_key: HashMap<Sym, SelectorsOnKey>,
    scan_selectors: SlotSet,
}

impl<I, S> Default for LabelIndex<I, S> {
    fn default() -> Self {
        LabelIndex {
            interner: Interner::default(),
            items: Slab::default(),
            item_slots: HashMap::new(),
            parents: Slab::default(),
            parent_slots: HashMap::new(),
            selectors: Slab::default(),
            selector_slots: HashMap::new(),
            items_by_key: HashMap::new(),
            selectors_by_key: HashMap::new(),
            scan_selectors: SlotSet::default(),
        }
    }
}

/// An item's labels as a selector sees them: its own, then each parent's.
struct ItemLabels<'a> {
    own: &'a [(Sym, Sym)],
    parents: &'a [u32],
    all_parents: &'a Slab<ParentData>,
}

fn lookup<'a>(labels: &'a [(Sym, Sym)], key: &str) -> Option<&'a str> {
    labels
        .binary_search_by(|(k, _)| (**k).cmp(key))
        .ok()
        .map(|i| &*labels[i].1)
}

impl Labels for ItemLabels<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        lookup(self.own, key).or_else(|| {
            self.parents
                .iter()
                .find_map(|&p| lookup(&self.all_parents[p].labels, key))
        })
    }
}

/// Rank of a label key as an index key: Calico's own labels are carried by
/// nearly every endpoint, so a user label narrows candidates far more.
fn key_rank(key: &str) -> u8 {
    match key {
        "projectcalico.org/orchestrator" => 3,
        k if k.starts_with("projectcalico.org/") => 2,
        k if k.starts_with("pcns.") || k.starts_with("pcsa.") => 1,
        _ => 0,
    }
}

/// Whether a bucket just reached a size worth revisiting selector filings
/// for: every doubling from 256, so the work stays logarithmic.
fn bucket_grew(len: usize) -> bool {
    len >= 256 && len.is_power_of_two()
}

impl<I, S> LabelIndex<I, S>
where
    I: Clone + Eq + Hash,
    S: Clone + Eq + Hash,
{
    pub fn new() -> Self {
        Self::default()
    }

    // ----- selectors -----

    /// Adds or replaces a selector, pushing the resulting match changes.
    pub fn update_selector(
        &mut self,
        id: S,
        selector: Selector,
        events: &mut Vec<MatchEvent<I, S>>,
    ) {
        let slot = match self.selector_slots.get(&id) {
            Some(&slot) => {
                if self.selectors[slot].selector == selector {
                    return;
                }
                self.unplace_selector(slot);
                self.selectors[slot].selector = selector;
                slot
            }
            None => {
                let slot = self.selectors.insert(SelectorData {
                    id: id.clone(),
                    selector,
                    placement: Placement::Never,
                    matches: SlotSet::default(),
                });
                self.selector_slots.insert(id, slot);
                slot
            }
        };
        let placement = self.choose_placement(&self.selectors[slot].selector);
        self.place_selector(slot, placement.clone());

        let candidates: Vec<u32> = match &placement {
            Placement::Never => Vec::new(),
            Placement::Scan => self.items.iter().map(|(s, _)| s).collect(),
            Placement::Key(k) => self
                .items_by_key
                .get(k)
                .map(|e| e.all.iter().copied().collect())
                .unwrap_or_default(),
            Placement::Values(k, values) => match self.items_by_key.get(k) {
                Some(e) => values
                    .iter()
                    .filter_map(|v| e.by_value.get(v))
                    .flatten()
                    .copied()
                    .collect(),
                None => Vec::new(),
            },
        };
        let sel = &self.selectors[slot].selector;
        let new_matches: SlotSet = candidates
            .into_iter()
            .filter(|&item| sel.evaluate(&self.item_labels(item)))
            .collect();
        let old_matches = std::mem::take(&mut self.selectors[slot].matches);
        for &item in old_matches.difference(&new_matches) {
            self.items[item].matches.remove(&slot);
            events.push(MatchEvent::Stopped {
                selector: self.selectors[slot].id.clone(),
                item: self.items[item].id.clone(),
            });
        }
        for &item in new_matches.difference(&old_matches) {
            self.items[item].matches.insert(slot);
            events.push(MatchEvent::Started {
                selector: self.selectors[slot].id.clone(),
                item: self.items[item].id.clone(),
            });
        }
        self.selectors[slot].matches = new_matches;
    }

    /// Removes a selector, pushing a stop for every item it matched.
    pub fn delete_selector(&mut self, id: &S, events: &mut Vec<MatchEvent<I, S>>) {
        let Some(slot) = self.selector_slots.remove(id) else {
            return;
        };
        self.unplace_selector(slot);
        let data = self.selectors.remove(slot).expect("selector slot");
        for item in data.matches {
            self.items[item].matches.remove(&slot);
            events.push(MatchEvent::Stopped {
                selector: data.id.clone(),
                item: self.items[item].id.clone(),
            });
        }
    }

    fn choose_placement(&self, selector: &Selector) -> Placement {
        let restrictions = selector.label_restrictions();
        if restrictions.values().any(|r| !r.possible_to_satisfy()) {
            return Placement::Never;
        }
        // Lower is better: (items now carrying the label/values, key rank,
        // any-value filing, number of values). Before any items exist the
        // key rank decides; filings are revisited as buckets grow.
        let mut best: Option<((usize, u8, bool, usize), Placement)> = None;
        for (key, r) in &restrictions {
            let entry = self.items_by_key.get(*key);
            let (score, placement) = match (&r.must_have_one_of_values, r.must_be_present) {
                (Some(values), _) => {
                    let count = entry.map_or(0, |e| {
                        values
                            .iter()
                            .map(|v| e.by_value.get(v.as_str()).map_or(0, SlotSet::len))
                            .sum()
                    });
                    (
                        (count, key_rank(key), false, values.len()),
                        Placement::Values(
                            Sym::from(*key),
                            values.iter().map(|v| Sym::from(v.as_str())).collect(),
                        ),
                    )
                }
                (None, true) => (
                    (entry.map_or(0, |e| e.all.len()), key_rank(key), true, 0),
                    Placement::Key(Sym::from(*key)),
                ),
                (None, false) => continue,
            };
            if best.as_ref().is_none_or(|(s, _)| score < *s) {
                best = Some((score, placement));
            }
        }
        best.map_or(Placement::Scan, |(_, p)| p)
    }

    fn place_selector(&mut self, slot: u32, placement: Placement) {
        let placement = match placement {
            Placement::Key(k) => Placement::Key(self.interner.intern(&k)),
            Placement::Values(k, vs) => Placement::Values(
                self.interner.intern(&k),
                vs.iter().map(|v| self.interner.intern(v)).collect(),
            ),
            other => other,
        };
        match &placement {
            Placement::Never => {}
            Placement::Scan => {
                self.scan_selectors.insert(slot);
            }
            Placement::Key(k) => {
                self.selectors_by_key
                    .entry(k.clone())
                    .or_default()
                    .any_value
                    .insert(slot);
            }
            Placement::Values(k, vs) => {
                let entry = self.selectors_by_key.entry(k.clone()).or_default();
                for v in vs.iter() {
                    entry.by_value.entry(v.clone()).or_default().insert(slot);
                }
            }
        }
        self.selectors[slot].placement = placement;
    }

    fn unplace_selector(&mut self, slot: u32) {
        let placement = std::mem::replace(&mut self.selectors[slot].placement, Placement::Never);
        match placement {
            Placement::Never => {}
            Placement::Scan => {
                self.scan_selectors.remove(&slot);
            }
            Placement::Key(k) => {
                if let Some(e) = self.selectors_by_key.get_mut(&k) {
                    e.any_value.remove(&slot);
                    if e.is_empty() {
                        self.selectors_by_key.remove(&k);
                    }
                }
            }
            Placement::Values(k, vs) => {
                if let Some(e) = self.selectors_by_key.get_mut(&k) {
                    for v in vs.iter() {
                        if let Some(set) = e.by_value.get_mut(v) {
                            set.remove(&slot);
                            if set.is_empty() {
                                e.by_value.remove(v);
                            }
                        }
                    }
                    if e.is_empty() {
                        self.selectors_by_key.remove(&k);
                    }
                }
            }
        }
    }

    // ----- items -----

    /// Adds or replaces an item with its own labels and its parents (in
    /// priority order), pushing the resulting match changes.
    pub fn update_item<K, V>(
        &mut self,
        id: I,
        labels: impl IntoIterator<Item = (K, V)>,
        parents: impl IntoIterator<Item = impl AsRef<str>>,
        events: &mut Vec<MatchEvent<I, S>>,
    ) where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut own: Vec<(Sym, Sym)> = labels
            .into_iter()
            .map(|(k, v)| {
                (
                    self.interner.intern(k.as_ref()),
                    self.interner.intern(v.as_ref()),
                )
            })
            .collect();
        own.sort_by(|a, b| a.0.cmp(&b.0));
        own.dedup_by(|later, earlier| later.0 == earlier.0);
        // A parent named twice adds nothing the first mention did not.
        let mut parent_names: Vec<Sym> = Vec::new();
        for p in parents {
            let name = self.interner.intern(p.as_ref());
            if !parent_names.contains(&name) {
                parent_names.push(name);
            }
        }

        let (slot, old_effective, old_parents) = match self.item_slots.get(&id) {
            Some(&slot) => {
                let item = &self.items[slot];
                let same_parents = item.parents.len() == parent_names.len()
                    && item
                        .parents
                        .iter()
                        .zip(&parent_names)
                        .all(|(&p, name)| self.parents[p].name == *name);
                if *item.labels == *own && same_parents {
                    return;
                }
                let old = self.effective_labels(slot);
                let old_parents = std::mem::take(&mut self.items[slot].parents);
                (slot, Some(old), old_parents)
            }
            None => {
                let slot = self.items.insert(ItemData {
                    id: id.clone(),
                    labels: Box::default(),
                    parents: Box::default(),
                    matches: SlotSet::default(),
                });
                self.item_slots.insert(id, slot);
                (slot, None, Box::default())
            }
        };
        // Join the new parents before leaving the old ones, so a parent in
        // both lists is never dropped in between.
        let parent_slots: Vec<u32> = parent_names.iter().map(|p| self.parent_slot(p)).collect();
        for &p in &parent_slots {
            self.parents[p].items.insert(slot);
        }
        for p in old_parents.iter() {
            if !parent_slots.contains(p) {
                self.parents[*p].items.remove(&slot);
                self.maybe_drop_parent(*p);
            }
        }
        let item = &mut self.items[slot];
        item.labels = own.into_boxed_slice();
        item.parents = parent_slots.into_boxed_slice();
        self.refresh_item(slot, old_effective.as_deref(), events);
    }

    /// Removes an item, pushing a stop for every selector that matched it.
    pub fn delete_item(&mut self, id: &I, events: &mut Vec<MatchEvent<I, S>>) {
        let Some(slot) = self.item_slots.remove(id) else {
            return;
        };
        let effective = self.effective_labels(slot);
        self.unfile_item(slot, &effective, &[]);
        let data = self.items.remove(slot).expect("item slot");
        for sel in data.matches {
            self.selectors[sel].matches.remove(&slot);
            events.push(MatchEvent::Stopped {
                selector: self.selectors[sel].id.clone(),
                item: data.id.clone(),
            });
        }
        for &p in data.parents.iter() {
            self.parents[p].items.remove(&slot);
            self.maybe_drop_parent(p);
        }
    }

    // ----- parents -----

    /// Defines or replaces a parent's labels, re-evaluating every item that
    /// names it.
    pub fn update_parent<K, V>(
        &mut self,
        name: &str,
        labels: impl IntoIterator<Item = (K, V)>,
        events: &mut Vec<MatchEvent<I, S>>,
    ) where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut new: Vec<(Sym, Sym)> = labels
            .into_iter()
            .map(|(k, v)| {
                (
                    self.interner.intern(k.as_ref()),
                    self.interner.intern(v.as_ref()),
                )
            })
            .collect();
        new.sort_by(|a, b| a.0.cmp(&b.0));
        new.dedup_by(|later, earlier| later.0 == earlier.0);
        let slot = self.parent_slot(name);
        self.parents[slot].defined = true;
        self.set_parent_labels(slot, new.into_boxed_slice(), events);
    }

    /// Forgets a parent's labels; items naming it keep naming it.
    pub fn delete_parent(&mut self, name: &str, events: &mut Vec<MatchEvent<I, S>>) {
        let Some(&slot) = self.parent_slots.get(name) else {
            return;
        };
        self.parents[slot].defined = false;
        self.set_parent_labels(slot, Box::default(), events);
        self.maybe_drop_parent(slot);
    }

    fn set_parent_labels(
        &mut self,
        slot: u32,
        labels: LabelVec,
        events: &mut Vec<MatchEvent<I, S>>,
    ) {
        if self.parents[slot].labels == labels {
            return;
        }
        let items: Vec<u32> = self.parents[slot].items.iter().copied().collect();
        let olds: Vec<Vec<(Sym, Sym)>> = items.iter().map(|&i| self.effective_labels(i)).collect();
        self.parents[slot].labels = labels;
        for (item, old) in items.into_iter().zip(olds) {
            self.refresh_item(item, Some(&old), events);
        }
    }

    fn parent_slot(&mut self, name: &str) -> u32 {
        if let Some(&slot) = self.parent_slots.get(name) {
            return slot;
        }
        let name = self.interner.intern(name);
        let slot = self.parents.insert(ParentData {
            name: name.clone(),
            labels: Box::default(),
            items: SlotSet::default(),
            defined: false,
        });
        self.parent_slots.insert(name, slot);
        slot
    }

    fn maybe_drop_parent(&mut self, slot: u32) {
        let p = &self.parents[slot];
        if !p.defined && p.items.is_empty() {
            let p = self.parents.remove(slot).expect("parent slot");
            self.parent_slots.remove(&p.name);
        }
    }

    // ----- shared machinery -----

    fn item_labels(&self, slot: u32) -> ItemLabels<'_> {
        let item = &self.items[slot];
        ItemLabels {
            own: &item.labels,
            parents: &item.parents,
            all_parents: &self.parents,
        }
    }

    /// Own labels merged with inherited ones, sorted by key.
    fn effective_labels(&self, slot: u32) -> Vec<(Sym, Sym)> {
        let item = &self.items[slot];
        let mut out: Vec<(Sym, Sym)> = item.labels.to_vec();
        for &p in item.parents.iter() {
            let known = out.len();
            for (k, v) in self.parents[p].labels.iter() {
                if out[..known].binary_search_by(|(ok, _)| ok.cmp(k)).is_err() {
                    out.push((k.clone(), v.clone()));
                }
            }
            if out.len() != known {
                out.sort_by(|a, b| a.0.cmp(&b.0));
            }
        }
        out
    }

    /// Moves the item's filing from `old` to its current labels and
    /// re-evaluates its candidate selectors.
    /// `old` is `None` for an item that was not indexed before.
    fn refresh_item(
        &mut self,
        slot: u32,
        old: Option<&[(Sym, Sym)]>,
        events: &mut Vec<MatchEvent<I, S>>,
    ) {
        let new = self.effective_labels(slot);
        if old.is_some_and(|old| *old == *new) {
            return;
        }
        let old = old.unwrap_or(&[]);
        self.unfile_item(slot, old, &new);
        self.file_item(slot, &new, old);

        let mut candidates: Vec<u32> = self.scan_selectors.iter().copied().collect();
        for (k, v) in &new {
            if let Some(e) = self.selectors_by_key.get(k) {
                candidates.extend(e.any_value.iter().copied());
                if let Some(set) = e.by_value.get(v) {
                    candidates.extend(set.iter().copied());
                }
            }
        }
        let labels = self.item_labels(slot);
        let new_matches: SlotSet = candidates
            .into_iter()
            .filter(|&s| self.selectors[s].selector.evaluate(&labels))
            .collect();
        let old_matches = std::mem::take(&mut self.items[slot].matches);
        for &sel in old_matches.difference(&new_matches) {
            self.selectors[sel].matches.remove(&slot);
            events.push(MatchEvent::Stopped {
                selector: self.selectors[sel].id.clone(),
                item: self.items[slot].id.clone(),
            });
        }
        for &sel in new_matches.difference(&old_matches) {
            self.selectors[sel].matches.insert(slot);
            events.push(MatchEvent::Started {
                selector: self.selectors[sel].id.clone(),
                item: self.items[slot].id.clone(),
            });
        }
        self.items[slot].matches = new_matches;
    }

    /// Files the item under each label in `new` that is not identical in
    /// `old`.
    fn file_item(&mut self, slot: u32, new: &[(Sym, Sym)], old: &[(Sym, Sym)]) {
        for (k, v) in new {
            let before = lookup(old, k);
            if before == Some(&**v) {
                continue;
            }
            let entry = self.items_by_key.entry(k.clone()).or_default();
            entry.all.insert(slot);
            let with_value = entry.by_value.entry(v.clone()).or_default();
            with_value.insert(slot);
            let (n_value, n_key) = (with_value.len(), entry.all.len());
            if bucket_grew(n_value) {
                self.refile_selectors(k, Some(v));
            }
            if bucket_grew(n_key) {
                self.refile_selectors(k, None);
            }
        }
    }

    /// Re-chooses where the selectors filed under `key` (`=value`) go, now
    /// that the bucket has grown: a selector filed under a label that turned
    /// out to be common moves to a rarer one it also requires. Matches do
    /// not change, only which items will be checked against it.
    fn refile_selectors(&mut self, key: &Sym, value: Option<&Sym>) {
        let Some(entry) = self.selectors_by_key.get(key) else {
            return;
        };
        let slots: Vec<u32> = match value {
            Some(v) => entry
                .by_value
                .get(v)
                .into_iter()
                .flatten()
                .copied()
                .collect(),
            None => entry.any_value.iter().copied().collect(),
        };
        for s in slots {
            let placement = self.choose_placement(&self.selectors[s].selector);
            if placement != self.selectors[s].placement {
                self.unplace_selector(s);
                self.place_selector(s, placement);
            }
        }
    }

    /// Unfiles the item from each label in `old` that is not identical in
    /// `new`.
    fn unfile_item(&mut self, slot: u32, old: &[(Sym, Sym)], new: &[(Sym, Sym)]) {
        for (k, v) in old {
            let after = lookup(new, k);
            if after == Some(&**v) {
                continue;
            }
            let Some(entry) = self.items_by_key.get_mut(k) else {
                continue;
            };
            if let Some(set) = entry.by_value.get_mut(v) {
                set.remove(&slot);
                if set.is_empty() {
                    entry.by_value.remove(v);
                }
            }
            if after.is_none() {
                entry.all.remove(&slot);
                if entry.all.is_empty() {
                    self.items_by_key.remove(k);
                }
            }
        }
    }

    // ----- queries -----

    /// Items the selector currently matches.
    pub fn selector_matches(&self, id: &S) -> impl Iterator<Item = &I> + '_ {
        self.selector_slots.get(id).into_iter().flat_map(move |&s| {
            self.selectors[s]
                .matches
                .iter()
                .map(move |&i| &self.items[i].id)
        })
    }

    /// Selectors currently matching the item.
    pub fn item_matches(&self, id: &I) -> impl Iterator<Item = &S> + '_ {
        self.item_slots.get(id).into_iter().flat_map(move |&i| {
            self.items[i]
                .matches
                .iter()
                .map(move |&s| &self.selectors[s].id)
        })
    }

    /// Whether the selector currently matches the item.
    pub fn is_match(&self, selector: &S, item: &I) -> bool {
        match (self.selector_slots.get(selector), self.item_slots.get(item)) {
            (Some(s), Some(i)) => self.items[*i].matches.contains(s),
            _ => false,
        }
    }

    /// The item's labels including inherited ones.
    pub fn item_labels_of(&self, id: &I) -> Option<BTreeMap<String, String>> {
        let &slot = self.item_slots.get(id)?;
        Some(
            self.effective_labels(slot)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    pub fn contains_item(&self, id: &I) -> bool {
        self.item_slots.contains_key(id)
    }

    pub fn contains_selector(&self, id: &S) -> bool {
        self.selector_slots.contains_key(id)
    }

    pub fn item_count(&self) -> usize {
        self.item_slots.len()
    }

    pub fn selector_count(&self) -> usize {
        self.selector_slots.len()
    }

    /// How many (selector, item) pairs currently match.
    pub fn match_count(&self) -> usize {
        self.selectors.iter().map(|(_, s)| s.matches.len()).sum()
    }

    /// How many selectors need evaluating against every changed item.
    pub fn scan_selector_count(&self) -> usize {
        self.scan_selectors.len()
    }
}

#[cfg(test)]
mod tests;
