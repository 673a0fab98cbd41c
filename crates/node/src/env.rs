//! The process environment as a value, so that start-up and configuration
//! read it through one door and tests hand in their own.

use std::collections::BTreeMap;

/// Environment variables by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// The variables of this process (names or values that are not UTF-8
    /// are left out: none of ours are).
    pub fn from_process() -> Env {
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name`, trimmed; `None` when unset or blank (Calico
    /// treats an empty variable as unset everywhere it matters here).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Whether `name` is set at all, even to an empty value.
    pub fn is_set(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }

    /// A boolean as Calico's start-up reads one: unset is `default`;
    /// `false`, `0`, `no`, `n`, `f` (any case) are false; anything else,
    /// even an empty value, is true.
    pub fn flag(&self, name: &str, default: bool) -> bool {
        match self.vars.get(name) {
            None => default,
            Some(v) => !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "false" | "0" | "no" | "n" | "f"
            ),
        }
    }

    /// Every variable, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(name.into(), value.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_follow_calicos_reading() {
        let env = Env::from_pairs([
            ("A", "false"),
            ("B", "No"),
            ("C", "0"),
            ("D", "true"),
            ("E", "yes"),
            ("F", ""),
        ]);
        assert!(!env.flag("A", true));
        assert!(!env.flag("B", true));
        assert!(!env.flag("C", true));
        assert!(env.flag("D", false));
        assert!(env.flag("E", false));
        assert!(env.flag("F", false), "set but empty counts as true");
        assert!(env.flag("UNSET", true));
        assert!(!env.flag("UNSET", false));
    }

    #[test]
    fn blank_values_read_as_unset() {
        let env = Env::from_pairs([("A", "  x "), ("B", "  ")]);
        assert_eq!(env.get("A"), Some("x"));
        assert_eq!(env.get("B"), None);
        assert!(env.is_set("B"));
    }
}
