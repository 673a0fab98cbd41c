//! Lower bounds on the labels an item must carry to match a selector: what
//! a label index needs to find candidate items without evaluating every
//! selector against every item. Same rules as Calico's `LabelRestrictions`.

use std::collections::{BTreeMap, BTreeSet};

use crate::expr::Expr;

/// What a selector requires of one label key. Each field is a necessary
/// condition, not a sufficient one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelRestriction {
    /// The label must be present (`has(k)`, `k == "v"`, `k in {..}`, ...).
    pub must_be_present: bool,
    /// The label must be absent (`!has(k)`).
    pub must_be_absent: bool,
    /// If set, the label's value must be one of these. An empty set means
    /// the selector can match nothing (`k == "a" && k == "b"`).
    pub must_have_one_of_values: Option<BTreeSet<String>>,
}

impl LabelRestriction {
    /// False when the restriction contradicts itself, so the selector
    /// matches no item at all.
    pub fn possible_to_satisfy(&self) -> bool {
        !(self.must_be_present && self.must_be_absent)
            && self
                .must_have_one_of_values
                .as_ref()
                .is_none_or(|v| !v.is_empty())
    }
}

/// Restrictions per label key, in key order.
pub type LabelRestrictions<'a> = BTreeMap<&'a str, LabelRestriction>;

fn present(values: Option<BTreeSet<String>>) -> LabelRestriction {
    LabelRestriction {
        must_be_present: true,
        must_be_absent: false,
        must_have_one_of_values: values,
    }
}

pub(crate) fn label_restrictions(expr: &Expr) -> LabelRestrictions<'_> {
    let mut out = BTreeMap::new();
    match expr {
        Expr::All | Expr::Global | Expr::NotEquals { .. } | Expr::NotIn { .. } => {}
        Expr::Has { key }
        | Expr::Contains { key, .. }
        | Expr::StartsWith { key, .. }
        | Expr::EndsWith { key, .. } => {
            out.insert(key.as_str(), present(None));
        }
        Expr::Equals { key, value } => {
            out.insert(key.as_str(), present(Some(BTreeSet::from([value.clone()]))));
        }
        Expr::In { key, values } => {
            out.insert(key.as_str(), present(Some(values.clone())));
        }
        // Only `!has(k)` says something definite: `!(k == "v")` does not
        // require `k` to be absent.
        Expr::Not(operand) => {
            if let Expr::Has { key } = operand.as_ref() {
                out.insert(
                    key.as_str(),
                    LabelRestriction {
                        must_be_absent: true,
                        ..LabelRestriction::default()
                    },
                );
            }
        }
        Expr::And(operands) => {
            for operand in operands {
                for (key, r) in label_restrictions(operand) {
                    let base: &mut LabelRestriction = out.entry(key).or_default();
                    base.must_be_present |= r.must_be_present;
                    base.must_be_absent |= r.must_be_absent;
                    base.must_have_one_of_values = match (
                        base.must_have_one_of_values.take(),
                        r.must_have_one_of_values,
                    ) {
                        (None, other) | (other, None) => other,
                        (Some(a), Some(b)) => Some(a.intersection(&b).cloned().collect()),
                    };
                }
            }
        }
        Expr::Or(operands) => {
            // A key stays restricted only if every branch restricts it.
            out = label_restrictions(&operands[0]);
            for operand in &operands[1..] {
                let other = label_restrictions(operand);
                out.retain(|key, r| {
                    let o = other.get(key).cloned().unwrap_or_default();
                    r.must_be_present = r.must_be_present && o.must_be_present;
                    r.must_have_one_of_values = match (
                        r.must_be_present,
                        r.must_have_one_of_values.take(),
                        o.must_have_one_of_values,
                    ) {
                        (true, Some(mut a), Some(b)) => {
                            a.extend(b);
                            Some(a)
                        }
                        _ => None,
                    };
                    r.must_be_absent = r.must_be_absent && o.must_be_absent;
                    r.must_be_present || r.must_be_absent
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Selector;

    fn present_with(values: &[&str]) -> LabelRestriction {
        present(Some(values.iter().map(|v| (*v).to_owned()).collect()))
    }

    fn absent() -> LabelRestriction {
        LabelRestriction {
            must_be_absent: true,
            ..LabelRestriction::default()
        }
    }

    #[test]
    fn restrictions_table() {
        let cases: Vec<(&str, Vec<(&str, LabelRestriction)>)> = vec![
            ("", vec![]),
            ("all()", vec![]),
            ("global()", vec![]),
            ("a == 'value'", vec![("a", present_with(&["value"]))]),
            ("has(a)", vec![("a", present(None))]),
            ("a in {'v1','v2'}", vec![("a", present_with(&["v1", "v2"]))]),
            ("a not in {'v1','v2'}", vec![]),
            ("a contains 'foo'", vec![("a", present(None))]),
            ("a starts with 'foo'", vec![("a", present(None))]),
            ("a ends with 'foo'", vec![("a", present(None))]),
            ("a != 'value'", vec![]),
            ("a == 'v1' && a == 'v1'", vec![("a", present_with(&["v1"]))]),
            ("a == 'v1' && a == 'v2'", vec![("a", present_with(&[]))]),
            ("a == 'v1' && has(a)", vec![("a", present_with(&["v1"]))]),
            ("has(a) && a == 'v1'", vec![("a", present_with(&["v1"]))]),
            (
                "a in {'v1','v2'} && a in {'v2','v3'}",
                vec![("a", present_with(&["v2"]))],
            ),
            (
                "has(a) && !has(a)",
                vec![(
                    "a",
                    LabelRestriction {
                        must_be_present: true,
                        must_be_absent: true,
                        must_have_one_of_values: None,
                    },
                )],
            ),
            (
                "a == 'v1' && b == 'v2'",
                vec![("a", present_with(&["v1"])), ("b", present_with(&["v2"]))],
            ),
            ("all() && a == 'v1'", vec![("a", present_with(&["v1"]))]),
            (
                "a == 'v1' || a == 'v2'",
                vec![("a", present_with(&["v1", "v2"]))],
            ),
            ("has(a) || a == 'v2'", vec![("a", present(None))]),
            ("a == 'v2' || has(a)", vec![("a", present(None))]),
            ("a == 'v2' || has(b)", vec![]),
            (
                "a == 'v2' || (has(b) && has(a))",
                vec![("a", present(None))],
            ),
            ("a == 'v1' || all()", vec![]),
            ("all() || b == 'v2'", vec![]),
            ("!has(a) || !has(a)", vec![("a", absent())]),
            ("!has(a) || has(a)", vec![]),
            ("!(a == 'value')", vec![]),
            ("!has(a)", vec![("a", absent())]),
            ("!!has(a)", vec![("a", present(None))]),
            // A parenthesised double negation is kept as two nodes, and
            // only `!has` directly is understood.
            ("!(!has(a))", vec![]),
        ];
        for (selector, want) in cases {
            let want: LabelRestrictions<'_> = want.into_iter().collect();
            let sel = Selector::parse(selector).unwrap();
            assert_eq!(sel.label_restrictions(), want, "selector {selector:?}");
            if !selector.is_empty() {
                let wrapped = Selector::parse(&format!("all() && ({selector})")).unwrap();
                assert_eq!(
                    wrapped.label_restrictions(),
                    want,
                    "selector all() && ({selector})"
                );
            }
        }
    }

    #[test]
    fn satisfiability() {
        assert!(present(None).possible_to_satisfy());
        assert!(present_with(&["a"]).possible_to_satisfy());
        assert!(!present_with(&[]).possible_to_satisfy());
        let both = LabelRestriction {
            must_be_present: true,
            must_be_absent: true,
            must_have_one_of_values: None,
        };
        assert!(!both.possible_to_satisfy());
    }
}
