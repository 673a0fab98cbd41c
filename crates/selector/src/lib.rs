//! Calico's label selector language.
//!
//! Owns: tokenizing, parsing, evaluating and canonicalising selectors such as
//! `app == 'web' && has(tier) && env in {'prod', 'staging'}`, plus what a
//! label index needs to index them (the [`Expr`] tree, the keys a selector
//! mentions, per-key [`LabelRestriction`]s). Pure: no I/O, no clock.
//!
//! Start at [`Selector::parse`]. The grammar, semantics and canonical text
//! follow Calico's `libcalico-go/lib/selector` so that canonical strings and
//! unique IDs (which name ipsets and index entries) are byte-for-byte the
//! same as Calico's.
//!
//! ```
//! use std::collections::BTreeMap;
//! use calico_selector::Selector;
//!
//! let sel = Selector::parse("app=='web'&&env in {'prod','dev'}").unwrap();
//! assert_eq!(sel.canonical(), r#"(app == "web" && env in {"dev", "prod"})"#);
//! let labels = BTreeMap::from([
//!     ("app".to_owned(), "web".to_owned()),
//!     ("env".to_owned(), "prod".to_owned()),
//! ]);
//! assert!(sel.evaluate(&labels));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::str::FromStr;

use base64::Engine as _;
use sha2::{Digest, Sha224};

mod expr;
mod parser;
mod restrictions;
mod tokenizer;

pub use expr::Expr;
pub use parser::MAX_NESTING;
pub use restrictions::{LabelRestriction, LabelRestrictions};
pub use tokenizer::{MAX_LABEL_KEY_LEN, is_valid_label_key};

/// Anything that can answer "what is the value of label `key`?".
pub trait Labels {
    fn get(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<&str> {
        BTreeMap::get(self, key).map(String::as_str)
    }
}

impl<S: BuildHasher> Labels for std::collections::HashMap<String, String, S> {
    fn get(&self, key: &str) -> Option<&str> {
        std::collections::HashMap::get(self, key).map(String::as_str)
    }
}

impl<L: Labels + ?Sized> Labels for &L {
    fn get(&self, key: &str) -> Option<&str> {
        (**self).get(key)
    }
}

/// A parsed selector.
///
/// Two selectors are equal when their canonical forms are equal, as in
/// Calico (which compares unique IDs).
#[derive(Clone)]
pub struct Selector {
    expr: Expr,
    canonical: String,
    unique_id: String,
}

/// A selector that failed to parse: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selector at position {position}: {message}")]
pub struct ParseError {
    /// Byte offset into the input where the problem was found.
    pub position: usize,
    pub message: String,
}

impl Selector {
    /// Parses a selector; the empty (or all-whitespace) string means `all()`.
    pub fn parse(input: &str) -> Result<Selector, ParseError> {
        parser::parse(input).map(Selector::from_parsed)
    }

    fn from_parsed(expr: Expr) -> Selector {
        let canonical = expr.to_string();
        let digest = Sha224::new()
            .chain_update(b"s:")
            .chain_update(canonical.as_bytes())
            .finalize();
        let unique_id = format!(
            "s:{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
        );
        Selector {
            expr,
            canonical,
            unique_id,
        }
    }

    /// The selector `all()`, which matches everything.
    pub fn all() -> Selector {
        Selector::from_parsed(Expr::All)
    }

    /// Whether an item with these labels is selected. Never allocates.
    pub fn evaluate(&self, labels: &dyn Labels) -> bool {
        self.expr.evaluate(labels)
    }

    /// Calico's canonical string form.
    pub fn canonical(&self) -> String {
        self.canonical.clone()
    }

    /// The canonical form, borrowed.
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// `s:` + unpadded base64url(SHA-224(`s:` + canonical)): what Calico
    /// calls the selector's unique ID.
    pub fn unique_id(&self) -> String {
        self.unique_id.clone()
    }

    /// The unique ID, borrowed.
    pub fn unique_id_str(&self) -> &str {
        &self.unique_id
    }

    /// The parsed expression, for walking.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Every label key the selector mentions, sorted, without duplicates.
    pub fn label_keys(&self) -> BTreeSet<&str> {
        let mut keys = BTreeSet::new();
        self.expr.walk(&mut |node| {
            if let Some(key) = node.key() {
                keys.insert(key);
            }
        });
        keys
    }

    /// Per label key, what an item must carry to have any chance of
    /// matching (see [`LabelRestriction`]). Keys the selector places no
    /// definite demand on are absent.
    pub fn label_restrictions(&self) -> LabelRestrictions<'_> {
        restrictions::label_restrictions(&self.expr)
    }

    /// The same selector with `prefix` in front of every label key, as
    /// Calico scopes a namespace selector with `pcns.`. The result's
    /// canonical form re-parses unless a prefixed key exceeds
    /// [`MAX_LABEL_KEY_LEN`] or the prefix holds characters a key may not.
    pub fn with_label_prefix(&self, prefix: &str) -> Selector {
        Selector::from_parsed(self.expr.with_key_prefix(prefix))
    }
}

impl Default for Selector {
    fn default() -> Self {
        Selector::all()
    }
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Selector").field(&self.canonical).finish()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl PartialEq for Selector {
    fn eq(&self, other: &Self) -> bool {
        self.canonical == other.canonical
    }
}

impl Eq for Selector {}

impl Hash for Selector {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.canonical.hash(state);
    }
}

impl PartialOrd for Selector {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Selector {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.canonical.cmp(&other.canonical)
    }
}

impl FromStr for Selector {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

/// Serialises as the canonical string.
impl serde::Serialize for Selector {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.canonical)
    }
}

/// Deserialises from a string in any accepted spelling.
impl<'de> serde::Deserialize<'de> for Selector {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SelectorVisitor;

        impl serde::de::Visitor<'_> for SelectorVisitor {
            type Value = Selector;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Calico selector string")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Selector, E> {
                Selector::parse(v).map_err(|err| E::custom(format!("{err} in {v:?}")))
            }
        }

        deserializer.deserialize_str(SelectorVisitor)
    }
}

#[cfg(test)]
mod tests;
