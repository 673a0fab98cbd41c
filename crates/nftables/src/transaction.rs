//! A transaction: the statements that take the kernel from one ruleset to
//! another, sent to `nft -f` as one script and applied atomically.
//!
//! Each statement is rendered on its own line, so the line number in an nft
//! error is the index of the statement that failed.

use std::fmt::{self, Display, Formatter, Write};

use crate::model::{BaseChain, DataType, Rule, TableId, Value, Verdict};

/// One statement of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    AddTable(TableId),
    DeleteTable(TableId),
    /// Declares a chain; for an existing base chain, updates its policy.
    AddChain {
        table: TableId,
        chain: String,
        base: Option<BaseChain>,
    },
    FlushChain {
        table: TableId,
        chain: String,
    },
    DeleteChain {
        table: TableId,
        chain: String,
    },
    AddRule {
        table: TableId,
        chain: String,
        rule: Rule,
    },
    AddSet {
        table: TableId,
        set: String,
        key: DataType,
        interval: bool,
    },
    FlushSet {
        table: TableId,
        set: String,
    },
    DeleteSet {
        table: TableId,
        set: String,
    },
    AddElements {
        table: TableId,
        set: String,
        elements: Vec<Value>,
    },
    DeleteElements {
        table: TableId,
        set: String,
        elements: Vec<Value>,
    },
    AddMap {
        table: TableId,
        map: String,
        key: DataType,
        interval: bool,
    },
    FlushMap {
        table: TableId,
        map: String,
    },
    DeleteMap {
        table: TableId,
        map: String,
    },
    AddMapEntries {
        table: TableId,
        map: String,
        entries: Vec<(Value, Verdict)>,
    },
    DeleteMapEntries {
        table: TableId,
        map: String,
        keys: Vec<Value>,
    },
}

impl Op {
    /// How many set elements or map entries this statement adds or removes.
    pub fn element_count(&self) -> usize {
        match self {
            Op::AddElements { elements, .. } | Op::DeleteElements { elements, .. } => {
                elements.len()
            }
            Op::AddMapEntries { entries, .. } => entries.len(),
            Op::DeleteMapEntries { keys, .. } => keys.len(),
            _ => 0,
        }
    }
}

fn write_list<T>(
    f: &mut Formatter<'_>,
    items: &[T],
    mut each: impl FnMut(&mut Formatter<'_>, &T) -> fmt::Result,
) -> fmt::Result {
    f.write_str("{ ")?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        each(f, item)?;
    }
    f.write_str(" }")
}

fn write_set_spec(f: &mut Formatter<'_>, key: &DataType, interval: bool, map: bool) -> fmt::Result {
    write!(f, "{{ type {key}")?;
    if map {
        f.write_str(" : verdict")?;
    }
    f.write_str(";")?;
    if interval {
        f.write_str(" flags interval;")?;
    }
    f.write_str(" }")
}

impl Display for Op {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Op::AddTable(t) => write!(f, "add table {t}"),
            Op::DeleteTable(t) => write!(f, "delete table {t}"),
            Op::AddChain { table, chain, base } => {
                write!(f, "add chain {table} {chain}")?;
                if let Some(base) = base {
                    write!(f, " {base}")?;
                }
                Ok(())
            }
            Op::FlushChain { table, chain } => write!(f, "flush chain {table} {chain}"),
            Op::DeleteChain { table, chain } => write!(f, "delete chain {table} {chain}"),
            Op::AddRule { table, chain, rule } => write!(f, "add rule {table} {chain} {rule}"),
            Op::AddSet {
                table,
                set,
                key,
                interval,
            } => {
                write!(f, "add set {table} {set} ")?;
                write_set_spec(f, key, *interval, false)
            }
            Op::FlushSet { table, set } => write!(f, "flush set {table} {set}"),
            Op::DeleteSet { table, set } => write!(f, "delete set {table} {set}"),
            Op::AddElements {
                table,
                set,
                elements,
            } => {
                write!(f, "add element {table} {set} ")?;
                write_list(f, elements, |f, e| write!(f, "{e}"))
            }
            Op::DeleteElements {
                table,
                set,
                elements,
            } => {
                write!(f, "delete element {table} {set} ")?;
                write_list(f, elements, |f, e| write!(f, "{e}"))
            }
            Op::AddMap {
                table,
                map,
                key,
                interval,
            } => {
                write!(f, "add map {table} {map} ")?;
                write_set_spec(f, key, *interval, true)
            }
            Op::FlushMap { table, map } => write!(f, "flush map {table} {map}"),
            Op::DeleteMap { table, map } => write!(f, "delete map {table} {map}"),
            Op::AddMapEntries {
                table,
                map,
                entries,
            } => {
                write!(f, "add element {table} {map} ")?;
                write_list(f, entries, |f, (k, v)| write!(f, "{k} : {v}"))
            }
            Op::DeleteMapEntries { table, map, keys } => {
                write!(f, "delete element {table} {map} ")?;
                write_list(f, keys, |f, k| write!(f, "{k}"))
            }
        }
    }
}

/// The statements that take the kernel from one ruleset to another, in an
/// order nft accepts: objects are declared before anything refers to them,
/// and references are removed before what they refer to is deleted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Transaction {
    pub ops: Vec<Op>,
}

impl Transaction {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The number of statements (lines of the script).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// How many set elements and map entries are added or removed.
    pub fn element_count(&self) -> usize {
        self.ops.iter().map(Op::element_count).sum()
    }

    /// The `nft -f` script: one statement per line, line `n` being
    /// `self.ops[n - 1]`.
    pub fn render(&self) -> String {
        let mut script = String::new();
        for op in &self.ops {
            // Writing to a String cannot fail.
            let _ = writeln!(script, "{op}");
        }
        script
    }

    /// The statement on script line `line` (1-based), as nft numbers them.
    pub fn statement_at_line(&self, line: usize) -> Option<&Op> {
        line.checked_sub(1).and_then(|i| self.ops.get(i))
    }
}
