use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

type Index = LabelIndex<String, String>;
type Events = Vec<MatchEvent<String, String>>;

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn started(events: &Events) -> BTreeSet<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            MatchEvent::Started { selector, item } => Some((selector.clone(), item.clone())),
            MatchEvent::Stopped { .. } => None,
        })
        .collect()
}

fn stopped(events: &Events) -> BTreeSet<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            MatchEvent::Stopped { selector, item } => Some((selector.clone(), item.clone())),
            MatchEvent::Started { .. } => None,
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

const NO_PARENTS: [&str; 0] = [];

#[test]
fn selector_added_after_items_matches_existing_items() {
    let mut idx = Index::new();
    let mut ev = Events::new();
    idx.update_item("web".into(), [("app", "web")], NO_PARENTS, &mut ev);
    idx.update_item("db".into(), [("app", "db")], NO_PARENTS, &mut ev);
    assert!(ev.is_empty());
    idx.update_selector("s".into(), sel("app == 'web'"), &mut ev);
    assert_eq!(started(&ev), pairs(&[("s", "web")]));
}

#[test]
fn item_label_change_starts_and_stops_matches() {
    let mut idx = Index::new();
    let mut ev = Events::new();
    idx.update_selector("web".into(), sel("app == 'web'"), &mut ev);
    idx.update_selector("db".into(), sel("app == 'db'"), &mut ev);
    idx.update_item("e".into(), [("app", "web")], NO_PARENTS, &mut ev);
    assert_eq!(started(&ev), pairs(&[("web", "e")]));
    ev.clear();
    idx.update_item("e".into(), [("app", "db")], NO_PARENTS, &mut ev);
    assert_eq!(stopped(&ev), pairs(&[("web", "e")]));
    assert_eq!(started(&ev), pairs(&[("db", "e")]));
    ev.clear();
    idx.update_item("e".into(), [("app", "db")], NO_PARENTS, &mut ev);
    assert!(ev.is_empty(), "unchanged update produced {ev:?}");
}

#[test]
fn table_of_selector_kinds() {
    // (selector, item labels, matches)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
    let cases: &[Case] = &[
        ("all()", &[], true),
        ("", &[("a", "b")], true),
        ("has(a)", &[("a", "")], true),
        ("has(a)", &[("b", "x")], false),
        ("!has(a)", &[("b", "x")], true),
        ("!has(a)", &[("a", "x")], false),
        ("a != 'x'", &[], true),
        ("a != 'x'", &[("a", "x")], false),
        ("a in {'x', 'y'}", &[("a", "y")], true),
        ("a not in {'x', 'y'}", &[("a", "z")], true),
        ("a == 'x' && a == 'y'", &[("a", "x")], false),
        ("a == 'x' || b == 'y'", &[("b", "y")], true),
        ("a starts with 'we'", &[("a", "web")], true),
        ("a ends with 'eb'", &[("a", "db")], false),
        ("a contains 'e'", &[("a", "web")], true),
    ];
    for (selector, labels, expect) in cases {
        // Both orders: selector first, then item first.
        for selector_first in [true, false] {
            let mut idx = Index::new();
            let mut ev = Events::new();
            if selector_first {
                idx.update_selector("s".into(), sel(selector), &mut ev);
                idx.update_item("i".into(), labels.iter().copied(), NO_PARENTS, &mut ev);
            } else {
                idx.update_item("i".into(), labels.iter().copied(), NO_PARENTS, &mut ev);
                idx.update_selector("s".into(), sel(selector), &mut ev);
            }
            assert_eq!(
                idx.is_match(&"s".into(), &"i".into()),
                *expect,
                "{selector} on {labels:?} (selector first: {selector_first})"
            );
            assert_eq!(started(&ev).len(), usize::from(*expect));
        }
    }
}

#[test]
fn own_labels_win_over_parents_and_first_parent_wins() {
    let mut idx = Index::new();
    let mut ev = Events::new();
    idx.update_parent("p1", [("a", "p1"), ("b", "p1")], &mut ev);
    idx.update_parent("p2", [("b", "p2"), ("c", "p2")], &mut ev);
    idx.update_item("i".into(), [("a", "own")], ["p1", "p2"], &mut ev);
    let labels = idx.item_labels_of(&"i".into()).unwrap();
    let expect: BTreeMap<String, String> = [("a", "own"), ("b", "p1"), ("c", "p2")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(labels, expect);
}

#[test]
fn parent_update_re_evaluates_children() {
    let mut idx = Index::new();
    let mut ev = Events::new();
    idx.update_selector("ns-prod".into(), sel("pcns.env == 'prod'"), &mut ev);
    idx.update_item("pod1".into(), [("app", "x")], ["kns.a"], &mut ev);
    idx.update_item("pod2".into(), [("app", "y")], ["kns.a"], &mut ev);
    idx.update_item("pod3".into(), [("app", "y")], ["kns.b"], &mut ev);
    assert!(ev.is_empty());
    // Parent defined after its children.
    idx.update_parent("kns.a", [("pcns.env", "prod")], &mut ev);
    assert_eq!(
        started(&ev),
        pairs(&[("ns-prod", "pod1"), ("ns-prod", "pod2")])
    );
    ev.clear();
    idx.update_parent("kns.a", [("pcns.env", "dev")], &mut ev);
    assert_eq!(
        stopped(&ev),
        pairs(&[("ns-prod", "pod1"), ("ns-prod", "pod2")])
    );
    ev.clear();
    idx.update_parent("kns.b", [("pcns.env", "prod")], &mut ev);
    assert_eq!(started(&ev), pairs(&[("ns-prod", "pod3")]));
    ev.clear();
    idx.delete_parent("kns.b", &mut ev);
    assert_eq!(stopped(&ev), pairs(&[("ns-prod", "pod3")]));
}

#[test]
fn deletes_emit_stops() {
    let mut idx = Index::new();
    let mut ev = Events::new();
    idx.update_selector("s".into(), sel("has(a)"), &mut ev);
    idx.update_selector("t".into(), sel("all()"), &mut ev);
    idx.update_item("i".into(), [("a", "1")], NO_PARENTS, &mut ev);
    idx.update_item("j".into(), [("a", "2")], NO_PARENTS, &mut ev);
    ev.clear();
    idx.delete_selector(&"s".into(), &mut ev);
    assert_eq!(stopped(&ev), pairs(&[("s", "i"), ("s", "j")]));
    ev.clear();
    idx.delete_item(&"i".into(), &mut ev);
    assert_eq!(stopped(&ev), pairs(&[("t", "i")]));
    assert_eq!(idx.item_count(), 1);
    assert_eq!(idx.selector_count(), 1);
}

#[test]
fn selectors_are_filed_under_a_required_label() {
    let mut idx = Index::new();
    let mut ev = Events::new();
    idx.update_selector("a".into(), sel("app == 'x' && has(tier)"), &mut ev);
    idx.update_selector(
        "b".into(),
        sel("projectcalico.org/orchestrator == 'k8s' && app == 'y'"),
        &mut ev,
    );
    idx.update_selector("c".into(), sel("has(tier)"), &mut ev);
    idx.update_selector("d".into(), sel("!has(tier)"), &mut ev);
    idx.update_selector("e".into(), sel("a == 'x' || b == 'y'"), &mut ev);
    idx.update_selector("f".into(), sel("a == 'x' && a == 'y'"), &mut ev);
    let placement = |id: &str| idx.selectors[idx.selector_slots[id]].placement.clone();
    assert!(matches!(placement("a"), Placement::Values(k, _) if &*k == "app"));
    assert!(matches!(placement("b"), Placement::Values(k, _) if &*k == "app"));
    assert!(matches!(placement("c"), Placement::Key(k) if &*k == "tier"));
    assert_eq!(placement("d"), Placement::Scan);
    assert_eq!(placement("e"), Placement::Scan);
    assert_eq!(placement("f"), Placement::Never);
    assert_eq!(idx.scan_selector_count(), 2);
}

#[test]
fn selectors_move_off_labels_that_turn_out_common() {
    let mut idx = Index::new();
    let mut ev = Events::new();
    // Before any items, `tier` (one value) looks as selective as `app`.
    idx.update_selector(
        "s".into(),
        sel("app in {'a1', 'a2'} && tier == 'web'"),
        &mut ev,
    );
    let placement = |idx: &Index| idx.selectors[idx.selector_slots["s"]].placement.clone();
    assert!(matches!(placement(&idx), Placement::Values(k, _) if &*k == "tier"));
    for i in 0..300 {
        let app = format!("a{}", i % 50);
        idx.update_item(
            format!("i{i}"),
            [("app", app.as_str()), ("tier", "web")],
            NO_PARENTS,
            &mut ev,
        );
    }
    assert!(matches!(placement(&idx), Placement::Values(k, _) if &*k == "app"));
    // Matching is unaffected by the move.
    let matched: BTreeSet<&String> = idx.selector_matches(&"s".into()).collect();
    assert_eq!(matched.len(), 12);
    idx.update_item(
        "new".into(),
        [("app", "a2"), ("tier", "web")],
        NO_PARENTS,
        &mut ev,
    );
    assert!(idx.is_match(&"s".into(), &"new".into()));
}

/// Brute force: every selector against every item's merged labels.
fn brute_force(
    selectors: &BTreeMap<String, Selector>,
    items: &BTreeMap<String, (BTreeMap<String, String>, Vec<String>)>,
    parents: &BTreeMap<String, BTreeMap<String, String>>,
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (iid, (own, item_parents)) in items {
        let mut labels = own.clone();
        for p in item_parents {
            if let Some(pl) = parents.get(p) {
                for (k, v) in pl {
                    labels.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        for (sid, s) in selectors {
            if s.evaluate(&labels) {
                out.insert((sid.clone(), iid.clone()));
            }
        }
    }
    out
}

#[derive(Debug, Clone)]
enum Op {
    Selector(u8, String),
    DeleteSelector(u8),
    Item(u8, Vec<(String, String)>, Vec<u8>),
    DeleteItem(u8),
    Parent(u8, Vec<(String, String)>),
    DeleteParent(u8),
}

fn label_pair() -> impl Strategy<Value = (String, String)> {
    (
        prop::sample::select(vec!["a", "b", "c", "pcns.env"]),
        prop::sample::select(vec!["x", "y", "z"]),
    )
        .prop_map(|(k, v)| (k.to_string(), v.to_string()))
}

fn selector_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("all()".to_string()),
        prop::sample::select(vec!["a", "b", "c", "pcns.env"]).prop_map(|k| format!("has({k})")),
        (
            prop::sample::select(vec!["a", "b", "c", "pcns.env"]),
            prop::sample::select(vec!["x", "y", "z"])
        )
            .prop_map(|(k, v)| format!("{k} == '{v}'")),
        (
            prop::sample::select(vec!["a", "b"]),
            prop::sample::select(vec!["x", "y"])
        )
            .prop_map(|(k, v)| format!("{k} != '{v}'")),
        prop::sample::select(vec!["a", "b", "c"]).prop_map(|k| format!("{k} in {{'x', 'y'}}")),
        prop::sample::select(vec!["a", "b", "c"]).prop_map(|k| format!("{k} not in {{'x'}}")),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) && ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) || ({b})")),
            inner.prop_map(|a| format!("!({a})")),
        ]
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..6, selector_text()).prop_map(|(i, s)| Op::Selector(i, s)),
        1 => (0u8..6).prop_map(Op::DeleteSelector),
        4 => (0u8..8, prop::collection::vec(label_pair(), 0..4), prop::collection::vec(0u8..3, 0..3))
            .prop_map(|(i, l, p)| Op::Item(i, l, p)),
        1 => (0u8..8).prop_map(Op::DeleteItem),
        2 => (0u8..3, prop::collection::vec(label_pair(), 0..3)).prop_map(|(i, l)| Op::Parent(i, l)),
        1 => (0u8..3).prop_map(Op::DeleteParent),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// After any sequence of updates, the index's matches equal brute-force
    /// evaluation, and the events it emitted add up to those matches.
    #[test]
    fn index_agrees_with_brute_force(ops in prop::collection::vec(op(), 1..40)) {
        let mut idx = Index::new();
        let mut selectors = BTreeMap::new();
        let mut items = BTreeMap::new();
        let mut parents = BTreeMap::new();
        let mut from_events: BTreeSet<(String, String)> = BTreeSet::new();
        for op in ops {
            let mut ev = Events::new();
            match op {
                Op::Selector(i, text) => {
                    let id = format!("s{i}");
                    selectors.insert(id.clone(), sel(&text));
                    idx.update_selector(id, sel(&text), &mut ev);
                }
                Op::DeleteSelector(i) => {
                    let id = format!("s{i}");
                    selectors.remove(&id);
                    idx.delete_selector(&id, &mut ev);
                }
                Op::Item(i, labels, ps) => {
                    let id = format!("i{i}");
                    let own: BTreeMap<String, String> = labels.iter().cloned().collect();
                    let ps: Vec<String> = ps.iter().map(|p| format!("p{p}")).collect();
                    idx.update_item(id.clone(), own.clone(), ps.clone(), &mut ev);
                    items.insert(id, (own, ps));
                }
                Op::DeleteItem(i) => {
                    let id = format!("i{i}");
                    items.remove(&id);
                    idx.delete_item(&id, &mut ev);
                }
                Op::Parent(i, labels) => {
                    let id = format!("p{i}");
                    let l: BTreeMap<String, String> = labels.into_iter().collect();
                    idx.update_parent(&id, l.clone(), &mut ev);
                    parents.insert(id, l);
                }
                Op::DeleteParent(i) => {
                    let id = format!("p{i}");
                    parents.remove(&id);
                    idx.delete_parent(&id, &mut ev);
                }
            }
            for e in ev {
                match e {
                    MatchEvent::Started { selector, item } => {
                        prop_assert!(from_events.insert((selector, item)), "duplicate start");
                    }
                    MatchEvent::Stopped { selector, item } => {
                        prop_assert!(from_events.remove(&(selector, item)), "stop without start");
                    }
                }
            }
            let expect = brute_force(&selectors, &items, &parents);
            let mut actual = BTreeSet::new();
            for sid in selectors.keys() {
                for iid in idx.selector_matches(sid) {
                    actual.insert((sid.clone(), iid.clone()));
                }
            }
            prop_assert_eq!(&actual, &expect);
            prop_assert_eq!(&from_events, &expect);
            for (iid, (own, _)) in &items {
                let merged = idx.item_labels_of(iid).unwrap();
                for (k, v) in own {
                    prop_assert_eq!(merged.get(k), Some(v));
                }
            }
        }
    }
}
