//! Calico's label selector language.
//!
//! Owns: tokenizing, parsing, evaluating and canonicalising selectors such as
//! `app == 'web' && has(tier) && env in {'prod', 'staging'}`. Pure: no I/O.
//! Start at [`Selector::parse`].

use std::collections::BTreeMap;

/// Anything that can answer "what is the value of label `key`?".
pub trait Labels {
    fn get(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<&str> {
        BTreeMap::get(self, key).map(String::as_str)
    }
}

impl Labels for std::collections::HashMap<String, String> {
    fn get(&self, key: &str) -> Option<&str> {
        std::collections::HashMap::get(self, key).map(String::as_str)
    }
}

/// A parsed selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Selector {
    _private: (),
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
    pub fn parse(_input: &str) -> Result<Selector, ParseError> {
        unimplemented!("selector parser")
    }

    /// Whether an item with these labels is selected.
    pub fn evaluate(&self, _labels: &dyn Labels) -> bool {
        unimplemented!("selector evaluator")
    }

    /// Calico's canonical string form.
    pub fn canonical(&self) -> String {
        unimplemented!("canonical form")
    }

    /// `s:` + unpadded base64url(SHA-224(`s:` + canonical)).
    pub fn unique_id(&self) -> String {
        unimplemented!("unique id")
    }
}
