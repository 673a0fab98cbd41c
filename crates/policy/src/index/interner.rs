//! Shared label strings: every distinct key and value is stored once and
//! handed out as a reference-counted `Arc<str>`, so 100k endpoints carrying
//! `projectcalico.org/orchestrator: k8s` cost one copy of each string.

use std::collections::HashSet;
use std::sync::Arc;

/// An interned string.
pub(crate) type Sym = Arc<str>;

/// The set of live strings. Strings nobody else holds are dropped by a sweep
/// that runs after as many interning calls as there were live strings at the
/// last sweep (at least 1024), so the amortised cost per call stays constant
/// and dead strings never outnumber live ones by more than that.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    set: HashSet<Sym>,
    calls_since_sweep: usize,
    live_after_sweep: usize,
}

impl Interner {
    pub(crate) fn intern(&mut self, s: &str) -> Sym {
        self.calls_since_sweep += 1;
        if self.calls_since_sweep > self.live_after_sweep.max(1024) {
            self.sweep();
        }
        if let Some(existing) = self.set.get(s) {
            return existing.clone();
        }
        let sym: Sym = Arc::from(s);
        self.set.insert(sym.clone());
        sym
    }

    fn sweep(&mut self) {
        self.set.retain(|s| Arc::strong_count(s) > 1);
        self.calls_since_sweep = 0;
        self.live_after_sweep = self.set.len();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_string_same_allocation() {
        let mut i = Interner::default();
        let a = i.intern("app");
        let b = i.intern("app");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(i.len(), 1);
    }

    #[test]
    fn unused_strings_are_swept() {
        let mut i = Interner::default();
        for n in 0..5000 {
            drop(i.intern(&format!("value-{n}")));
        }
        let kept = i.intern("kept");
        for n in 0..5000 {
            drop(i.intern(&format!("other-{n}")));
        }
        assert!(i.len() < 3000, "interner kept {} dead strings", i.len());
        assert!(Arc::ptr_eq(&kept, &i.intern("kept")));
    }
}
