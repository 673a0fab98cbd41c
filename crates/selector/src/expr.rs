//! The parsed form of a selector: evaluation and the canonical text.

use std::collections::BTreeSet;
use std::fmt;

use crate::Labels;
use crate::tokenizer::quote_char;

/// A parsed selector expression.
///
/// The parser builds exactly the shapes Calico's parser builds: runs of `!`
/// collapse to at most one [`Expr::Not`], a parenthesised group adds no node
/// of its own, and [`Expr::And`] / [`Expr::Or`] always hold two or more
/// operands. (`!(!has(a))` is therefore `Not(Not(Has))`, while `!!has(a)`
/// is just `Has`.)
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expr {
    /// `all()`: matches everything.
    All,
    /// `global()`: matches everything when evaluated. Its meaning ("not in
    /// any namespace") comes from the policy layer, which rewrites it in
    /// namespace selectors before evaluation, as Calico does.
    Global,
    /// `has(key)`: the label is present, whatever its value.
    Has { key: String },
    /// `key == "value"`; false when the label is absent.
    Equals { key: String, value: String },
    /// `key != "value"`; true when the label is absent.
    NotEquals { key: String, value: String },
    /// `key contains "value"`; false when the label is absent.
    Contains { key: String, value: String },
    /// `key starts with "value"`; false when the label is absent.
    StartsWith { key: String, value: String },
    /// `key ends with "value"`; false when the label is absent.
    EndsWith { key: String, value: String },
    /// `key in {"a", "b"}`; false when the label is absent.
    In {
        key: String,
        values: BTreeSet<String>,
    },
    /// `key not in {"a", "b"}`; true when the label is absent.
    NotIn {
        key: String,
        values: BTreeSet<String>,
    },
    /// `!operand`.
    Not(Box<Expr>),
    /// `(a && b && ...)`: two or more operands.
    And(Vec<Expr>),
    /// `(a || b || ...)`: two or more operands.
    Or(Vec<Expr>),
}

impl Expr {
    /// Whether an item with these labels is selected. Never allocates.
    pub fn evaluate<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        match self {
            Expr::All | Expr::Global => true,
            Expr::Has { key } => labels.get(key).is_some(),
            Expr::Equals { key, value } => labels.get(key) == Some(value.as_str()),
            Expr::NotEquals { key, value } => labels.get(key) != Some(value.as_str()),
            Expr::Contains { key, value } => {
                labels.get(key).is_some_and(|v| v.contains(value.as_str()))
            }
            Expr::StartsWith { key, value } => labels
                .get(key)
                .is_some_and(|v| v.starts_with(value.as_str())),
            Expr::EndsWith { key, value } => {
                labels.get(key).is_some_and(|v| v.ends_with(value.as_str()))
            }
            Expr::In { key, values } => labels.get(key).is_some_and(|v| values.contains(v)),
            Expr::NotIn { key, values } => labels.get(key).is_none_or(|v| !values.contains(v)),
            Expr::Not(operand) => !operand.evaluate(labels),
            Expr::And(operands) => operands.iter().all(|op| op.evaluate(labels)),
            Expr::Or(operands) => operands.iter().any(|op| op.evaluate(labels)),
        }
    }

    /// The label key a leaf names (`has`, the comparisons, `in`, `not in`);
    /// `None` for `all()`, `global()` and the boolean combinators.
    pub fn key(&self) -> Option<&str> {
        match self {
            Expr::Has { key }
            | Expr::Equals { key, .. }
            | Expr::NotEquals { key, .. }
            | Expr::Contains { key, .. }
            | Expr::StartsWith { key, .. }
            | Expr::EndsWith { key, .. }
            | Expr::In { key, .. }
            | Expr::NotIn { key, .. } => Some(key),
            Expr::All | Expr::Global | Expr::Not(_) | Expr::And(_) | Expr::Or(_) => None,
        }
    }

    /// The direct sub-expressions of `!`, `&&` and `||`; empty for leaves.
    pub fn children(&self) -> &[Expr] {
        match self {
            Expr::Not(operand) => std::slice::from_ref(operand),
            Expr::And(operands) | Expr::Or(operands) => operands,
            _ => &[],
        }
    }

    /// Calls `visit` on this node and then on every node below it,
    /// depth first, left to right.
    pub fn walk<'a>(&'a self, visit: &mut impl FnMut(&'a Expr)) {
        visit(self);
        for child in self.children() {
            child.walk(visit);
        }
    }

    /// The same expression with `prefix` put in front of every label key
    /// (how Calico scopes namespace and service-account selectors, e.g.
    /// with `pcns.`).
    pub fn with_key_prefix(&self, prefix: &str) -> Expr {
        let k = |key: &String| format!("{prefix}{key}");
        match self {
            Expr::All => Expr::All,
            Expr::Global => Expr::Global,
            Expr::Has { key } => Expr::Has { key: k(key) },
            Expr::Equals { key, value } => Expr::Equals {
                key: k(key),
                value: value.clone(),
            },
            Expr::NotEquals { key, value } => Expr::NotEquals {
                key: k(key),
                value: value.clone(),
            },
            Expr::Contains { key, value } => Expr::Contains {
                key: k(key),
                value: value.clone(),
            },
            Expr::StartsWith { key, value } => Expr::StartsWith {
                key: k(key),
                value: value.clone(),
            },
            Expr::EndsWith { key, value } => Expr::EndsWith {
                key: k(key),
                value: value.clone(),
            },
            Expr::In { key, values } => Expr::In {
                key: k(key),
                values: values.clone(),
            },
            Expr::NotIn { key, values } => Expr::NotIn {
                key: k(key),
                values: values.clone(),
            },
            Expr::Not(operand) => Expr::Not(Box::new(operand.with_key_prefix(prefix))),
            Expr::And(operands) => Expr::And(
                operands
                    .iter()
                    .map(|op| op.with_key_prefix(prefix))
                    .collect(),
            ),
            Expr::Or(operands) => Expr::Or(
                operands
                    .iter()
                    .map(|op| op.with_key_prefix(prefix))
                    .collect(),
            ),
        }
    }
}

fn write_quoted(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    let q = quote_char(value);
    write!(f, "{q}{value}{q}")
}

fn write_comparison(f: &mut fmt::Formatter<'_>, key: &str, op: &str, value: &str) -> fmt::Result {
    write!(f, "{key} {op} ")?;
    write_quoted(f, value)
}

fn write_set(
    f: &mut fmt::Formatter<'_>,
    key: &str,
    op: &str,
    values: &BTreeSet<String>,
) -> fmt::Result {
    write!(f, "{key} {op} {{")?;
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write_quoted(f, value)?;
    }
    f.write_str("}")
}

fn write_joined(f: &mut fmt::Formatter<'_>, operands: &[Expr], op: &str) -> fmt::Result {
    f.write_str("(")?;
    for (i, operand) in operands.iter().enumerate() {
        if i > 0 {
            f.write_str(op)?;
        }
        write!(f, "{operand}")?;
    }
    f.write_str(")")
}

/// Calico's canonical text: single spaces around binary operators, every
/// `&&`/`||` group in parentheses, values in double quotes unless they
/// hold a double quote, sets sorted and de-duplicated.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::All => f.write_str("all()"),
            Expr::Global => f.write_str("global()"),
            Expr::Has { key } => write!(f, "has({key})"),
            Expr::Equals { key, value } => write_comparison(f, key, "==", value),
            Expr::NotEquals { key, value } => write_comparison(f, key, "!=", value),
            Expr::Contains { key, value } => write_comparison(f, key, "contains", value),
            Expr::StartsWith { key, value } => write_comparison(f, key, "starts with", value),
            Expr::EndsWith { key, value } => write_comparison(f, key, "ends with", value),
            Expr::In { key, values } => write_set(f, key, "in", values),
            Expr::NotIn { key, values } => write_set(f, key, "not in", values),
            Expr::Not(operand) => write!(f, "!{operand}"),
            Expr::And(operands) => write_joined(f, operands, " && "),
            Expr::Or(operands) => write_joined(f, operands, " || "),
        }
    }
}
