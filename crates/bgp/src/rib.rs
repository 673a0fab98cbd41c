//! The Loc-RIB: every usable path per prefix, the best one first.
//!
//! Paths come from peers (what RFC 4271 calls the Adj-RIBs-In, after import
//! checks) or from this speaker (its originated prefixes). Selection follows
//! RFC 4271 §9.1.2.2 with RFC 4456's additions, which is what Calico's
//! topologies (mesh, route reflectors, a few external peers) exercise:
//! local origination, LOCAL_PREF, AS_PATH length, ORIGIN, MED between
//! routes from the same neighbouring AS, eBGP over iBGP, router id (the
//! ORIGINATOR_ID when reflected), CLUSTER_LIST length, peer address. Stale
//! paths of a restarting peer lose to fresh ones.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ipnet::IpNet;

use crate::attributes::PathAttributes;
use crate::wire::Family;

/// LOCAL_PREF assumed when a path has none (RFC 4271 leaves it local;
/// every common implementation uses 100).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// Where a path came from, as far as selection and export care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PathSource {
    /// The peer's address; `None` for a path this speaker originates.
    pub peer: Option<IpAddr>,
    /// Learned over eBGP.
    pub external: bool,
    /// The peer's BGP identifier (ours for local paths).
    pub router_id: Ipv4Addr,
    /// The peer is a route reflector client of ours.
    pub rr_client: bool,
}

impl PathSource {
    pub fn local(router_id: Ipv4Addr) -> Self {
        PathSource {
            peer: None,
            external: false,
            router_id,
            rr_client: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub attrs: Arc<PathAttributes>,
    pub source: PathSource,
    /// Kept from a peer that is restarting (RFC 4724).
    pub stale: bool,
}

impl Path {
    pub fn is_local(&self) -> bool {
        self.source.peer.is_none()
    }
}

/// Orders two paths for the same prefix: `Greater` when `a` is preferred.
/// MED is compared only between paths from the same neighbouring AS.
pub fn compare(a: &Path, b: &Path) -> Ordering {
    compare_with(
        a,
        b,
        a.attrs.as_path.first_as() == b.attrs.as_path.first_as(),
    )
}

fn compare_with(a: &Path, b: &Path, use_med: bool) -> Ordering {
    let (x, y) = (&*a.attrs, &*b.attrs);
    a.is_local()
        .cmp(&b.is_local())
        .then_with(|| b.stale.cmp(&a.stale))
        .then_with(|| {
            x.local_pref
                .unwrap_or(DEFAULT_LOCAL_PREF)
                .cmp(&y.local_pref.unwrap_or(DEFAULT_LOCAL_PREF))
        })
        .then_with(|| y.as_path.length().cmp(&x.as_path.length()))
        .then_with(|| y.origin.cmp(&x.origin))
        .then_with(|| {
            if use_med {
                y.med.unwrap_or(0).cmp(&x.med.unwrap_or(0))
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| a.source.external.cmp(&b.source.external))
        .then_with(|| {
            let id = |p: &Path| p.attrs.originator_id.unwrap_or(p.source.router_id);
            id(b).cmp(&id(a))
        })
        .then_with(|| y.cluster_list.len().cmp(&x.cluster_list.len()))
        .then_with(|| b.source.peer.cmp(&a.source.peer))
}

/// What a change did to a prefix's best path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BestChange {
    /// A new best path (or the best path's attributes changed).
    New(Path),
    /// No path left.
    Gone,
}

/// Paths per prefix, the best first.
#[derive(Debug, Default)]
pub struct Rib {
    table: HashMap<IpNet, Vec<Path>>,
}

impl Rib {
    pub fn new() -> Self {
        Rib::default()
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn best(&self, prefix: &IpNet) -> Option<&Path> {
        self.table.get(prefix).and_then(|paths| paths.first())
    }

    pub fn paths(&self, prefix: &IpNet) -> &[Path] {
        self.table.get(prefix).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every prefix with its best path.
    pub fn iter_best(&self) -> impl Iterator<Item = (&IpNet, &Path)> {
        self.table
            .iter()
            .filter_map(|(p, paths)| paths.first().map(|b| (p, b)))
    }

    /// Adds or replaces the path to `prefix` from `path.source.peer`.
    pub fn insert(&mut self, prefix: IpNet, path: Path) -> Option<BestChange> {
        let paths = self.table.entry(prefix).or_default();
        let before = paths.first().cloned();
        match paths.iter_mut().find(|p| p.source.peer == path.source.peer) {
            Some(existing) => *existing = path,
            None => paths.push(path),
        }
        Self::reselect(paths);
        change(before, paths.first())
    }

    /// Removes the path to `prefix` from `peer` (`None`: the local one).
    pub fn remove(&mut self, prefix: &IpNet, peer: Option<IpAddr>) -> Option<BestChange> {
        let paths = self.table.get_mut(prefix)?;
        let i = paths.iter().position(|p| p.source.peer == peer)?;
        let before = paths.first().cloned();
        paths.remove(i);
        Self::reselect(paths);
        let result = change(before, paths.first());
        if paths.is_empty() {
            self.table.remove(prefix);
        }
        result
    }

    /// Marks `peer`'s paths in `prefixes` stale.
    pub fn mark_stale(&mut self, peer: IpAddr, prefixes: &[IpNet]) -> Vec<(IpNet, BestChange)> {
        let mut changes = Vec::new();
        for prefix in prefixes {
            if let Some(paths) = self.table.get_mut(prefix) {
                let before = paths.first().cloned();
                for p in paths.iter_mut().filter(|p| p.source.peer == Some(peer)) {
                    p.stale = true;
                }
                Self::reselect(paths);
                if let Some(c) = change(before, paths.first()) {
                    changes.push((*prefix, c));
                }
            }
        }
        changes
    }

    /// Whether `peer`'s path to `prefix` is stale.
    pub fn is_stale(&self, prefix: &IpNet, peer: IpAddr) -> bool {
        self.paths(prefix)
            .iter()
            .any(|p| p.source.peer == Some(peer) && p.stale)
    }

    /// Puts the best path first. MED makes pairwise comparison
    /// intransitive, so selection is done as "deterministic MED" does it:
    /// the best path of each neighbouring AS, MED included, then the best
    /// of those without MED. The result never depends on arrival order.
    fn reselect(paths: &mut [Path]) {
        if paths.len() < 2 {
            return;
        }
        let better = |a: usize, b: usize, med: bool| {
            if compare_with(&paths[b], &paths[a], med) == Ordering::Greater {
                b
            } else {
                a
            }
        };
        let same_as = |i: usize, j: usize| {
            paths[i].attrs.as_path.first_as() == paths[j].attrs.as_path.first_as()
        };
        let best = (0..paths.len())
            .filter(|&i| {
                (0..paths.len())
                    .filter(|&j| same_as(i, j))
                    .fold(i, |w, j| better(w, j, true))
                    == i
            })
            .reduce(|a, b| better(a, b, false))
            .unwrap_or(0);
        paths.swap(0, best);
    }
}

fn change(before: Option<Path>, after: Option<&Path>) -> Option<BestChange> {
    match (before, after) {
        (None, None) => None,
        (Some(_), None) => Some(BestChange::Gone),
        (None, Some(a)) => Some(BestChange::New(a.clone())),
        (Some(b), Some(a)) => (b != *a).then(|| BestChange::New(a.clone())),
    }
}

/// The unicast family of a prefix.
pub fn family_of(prefix: &IpNet) -> Family {
    Family::unicast_of(prefix.addr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{AsPath, Origin};
    use proptest::prelude::*;

    fn peer(n: u8, external: bool) -> PathSource {
        PathSource {
            peer: Some(IpAddr::from([10, 0, 0, n])),
            external,
            router_id: Ipv4Addr::new(10, 0, 0, n),
            rr_client: false,
        }
    }

    fn path(source: PathSource, f: impl FnOnce(&mut PathAttributes)) -> Path {
        let mut attrs = PathAttributes {
            as_path: AsPath::sequence([65001]),
            next_hop: source.peer,
            ..PathAttributes::default()
        };
        f(&mut attrs);
        Path {
            attrs: Arc::new(attrs),
            source,
            stale: false,
        }
    }

    #[test]
    fn selection_follows_the_decision_process() {
        let local = Path {
            attrs: Arc::new(PathAttributes::default()),
            source: PathSource::local(Ipv4Addr::new(10, 0, 0, 99)),
            stale: false,
        };
        // (name, preferred, other)
        let cases = [
            (
                "local wins",
                local.clone(),
                path(peer(1, false), |a| a.local_pref = Some(1000)),
            ),
            (
                "local pref",
                path(peer(2, false), |a| a.local_pref = Some(200)),
                path(peer(1, false), |_| {}),
            ),
            (
                "as path",
                path(peer(2, true), |_| {}),
                path(peer(1, true), |a| {
                    a.as_path = AsPath::sequence([65001, 65002])
                }),
            ),
            (
                "origin",
                path(peer(2, true), |_| {}),
                path(peer(1, true), |a| a.origin = Origin::Incomplete),
            ),
            (
                "med same as",
                path(peer(2, true), |a| a.med = Some(5)),
                path(peer(1, true), |a| a.med = Some(10)),
            ),
            (
                "ebgp over ibgp",
                path(peer(2, true), |_| {}),
                path(peer(1, false), |_| {}),
            ),
            (
                "router id",
                path(peer(1, false), |_| {}),
                path(peer(2, false), |_| {}),
            ),
            (
                "originator id counts as router id",
                path(peer(2, false), |a| {
                    a.originator_id = Some(Ipv4Addr::new(1, 1, 1, 1))
                }),
                path(peer(1, false), |_| {}),
            ),
            (
                "cluster list",
                path(peer(2, false), |a| {
                    a.originator_id = Some(Ipv4Addr::new(1, 1, 1, 1))
                }),
                path(peer(1, false), |a| {
                    a.originator_id = Some(Ipv4Addr::new(1, 1, 1, 1));
                    a.cluster_list = vec![Ipv4Addr::new(9, 9, 9, 9)];
                }),
            ),
            (
                "fresh over stale",
                path(peer(2, false), |_| {}),
                Path {
                    stale: true,
                    ..path(peer(1, false), |_| {})
                },
            ),
        ];
        for (name, better, worse) in cases {
            assert_eq!(compare(&better, &worse), Ordering::Greater, "{name}");
            assert_eq!(compare(&worse, &better), Ordering::Less, "{name}");
        }
        // MED is not compared between different neighbouring ASes: the
        // router id decides instead.
        let a = path(peer(1, true), |a| a.med = Some(100));
        let b = path(peer(2, true), |a| {
            a.med = Some(1);
            a.as_path = AsPath::sequence([65009]);
        });
        assert_eq!(compare(&a, &b), Ordering::Greater);
    }

    #[test]
    fn insert_and_remove_report_best_changes() {
        let mut rib = Rib::new();
        let prefix: IpNet = "192.168.0.0/26".parse().unwrap();
        let worse = path(peer(2, false), |_| {});
        let better = path(peer(1, false), |a| a.local_pref = Some(200));
        assert_eq!(
            rib.insert(prefix, worse.clone()),
            Some(BestChange::New(worse.clone()))
        );
        assert_eq!(
            rib.insert(prefix, better.clone()),
            Some(BestChange::New(better.clone()))
        );
        // A worse path arriving changes nothing visible.
        let third = path(peer(3, false), |_| {});
        assert_eq!(rib.insert(prefix, third.clone()), None);
        assert_eq!(rib.paths(&prefix).len(), 3);
        // Removing a non-best path changes nothing; removing the best
        // promotes the next.
        assert_eq!(rib.remove(&prefix, third.source.peer), None);
        assert_eq!(
            rib.remove(&prefix, better.source.peer),
            Some(BestChange::New(worse.clone()))
        );
        assert_eq!(
            rib.remove(&prefix, worse.source.peer),
            Some(BestChange::Gone)
        );
        assert!(rib.is_empty());
        assert_eq!(rib.remove(&prefix, worse.source.peer), None);
    }

    #[test]
    fn stale_paths_lose_but_stay() {
        let mut rib = Rib::new();
        let prefix: IpNet = "192.168.0.0/26".parse().unwrap();
        let a = path(peer(1, false), |_| {});
        let b = path(peer(2, false), |_| {});
        rib.insert(prefix, a.clone());
        rib.insert(prefix, b.clone());
        assert_eq!(rib.best(&prefix).unwrap().source, a.source);
        let changes = rib.mark_stale(a.source.peer.unwrap(), &[prefix]);
        assert_eq!(changes.len(), 1);
        assert_eq!(rib.best(&prefix).unwrap().source, b.source);
        assert!(rib.is_stale(&prefix, a.source.peer.unwrap()));
        // Re-announcing makes it fresh again.
        rib.insert(prefix, a.clone());
        assert_eq!(rib.best(&prefix).unwrap().source, a.source);
    }

    proptest! {
        #[test]
        fn best_path_does_not_depend_on_arrival_order(
            specs in prop::collection::vec((1u8..20, any::<bool>(), 0u32..3, 0usize..3, 0u32..3), 1..8),
            seed in any::<u64>(),
        ) {
            let mut paths: Vec<Path> = Vec::new();
            for (n, external, pref, len, med) in specs {
                if paths.iter().any(|p| p.source.peer == Some(IpAddr::from([10, 0, 0, n]))) {
                    continue;
                }
                paths.push(path(peer(n, external), |a| {
                    a.local_pref = Some(pref);
                    a.as_path = AsPath::sequence((0..len as u32).map(|i| 65000 + i));
                    a.med = Some(med);
                }));
            }
            let prefix: IpNet = "10.1.0.0/16".parse().unwrap();
            let mut forward = Rib::new();
            for p in &paths {
                forward.insert(prefix, p.clone());
            }
            let mut shuffled = paths.clone();
            // A deterministic shuffle from the seed.
            let mut s = seed;
            for i in (1..shuffled.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            let mut backward = Rib::new();
            for p in &shuffled {
                backward.insert(prefix, p.clone());
            }
            prop_assert_eq!(forward.best(&prefix), backward.best(&prefix));
            // The best beats every path from its own neighbouring AS.
            let best = forward.best(&prefix).unwrap();
            for p in paths.iter().filter(|p| p.attrs.as_path.first_as() == best.attrs.as_path.first_as()) {
                prop_assert_ne!(compare(best, p), Ordering::Less);
            }
        }
    }
}
