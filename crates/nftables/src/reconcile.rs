//! The driver: makes the kernel's copy of the agent's tables equal to a
//! desired [`Ruleset`], sending only the difference, atomically.
//!
//! The reconciler remembers what it last applied and diffs against that,
//! so an update costs one nft run and no listing. Validation, the diff and
//! the copy it keeps cost in proportion to the chains, sets and maps not
//! shared with the last applied ruleset (see [`crate::model`]). The kernel
//! is read again only when the reconciler does not know its state: at the
//! start, after a failed transaction, and on [`Reconciler::repair`], which
//! the agent calls on a timer to undo changes made behind its back.
//!
//! It reads and writes only the tables it owns; other tables (kube-proxy's,
//! anyone's) are never listed or touched.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::model::{Ruleset, TableId};
use crate::nft::{BlockingNft, Nft, NftCli, NftError};
use crate::parse::{Observed, ParseError};
use crate::transaction::Transaction;
use crate::validate::{Problem, describe};

/// A statement nft refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 1-based position in the transaction (and line of the script).
    pub line: usize,
    /// The statement, shortened when long (element lists can be huge).
    pub statement: String,
    /// The part of the statement nft pointed at, e.g. one set element.
    pub near: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "statement {} `{}`", self.line, self.statement)?;
        if let Some(near) = &self.near {
            write!(f, " at `{near}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Reconciling failed; the kernel is as it was before the attempt.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("the desired ruleset is invalid: {}", describe(.problems))]
    Invalid { problems: Vec<Problem> },
    #[error("the desired ruleset has table {table}, which this reconciler does not own")]
    NotOwned { table: TableId },
    #[error("cannot read table {table} from the kernel")]
    List {
        table: TableId,
        #[source]
        source: Box<NftError>,
    },
    #[error("cannot understand the kernel's listing")]
    Parse(#[source] ParseError),
    #[error("nft rejected the transaction ({statements} statements; nothing was applied): {first}")]
    Rejected {
        statements: usize,
        first: Box<Rejection>,
        /// Further statements nft complained about, if any.
        others: Vec<Rejection>,
    },
    #[error("applying a transaction of {statements} statements")]
    Apply {
        statements: usize,
        #[source]
        source: Box<NftError>,
    },
}

/// What one reconciliation did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Statements sent (0: the kernel already matched).
    pub statements: usize,
    /// Set elements and map entries added or removed.
    pub elements: usize,
    /// Bytes of script sent.
    pub script_bytes: usize,
    /// Whether the kernel's tables were listed.
    pub read_kernel: bool,
    /// Whether the first attempt, diffed against the remembered state,
    /// failed and was redone against a fresh listing.
    pub retried: bool,
    /// What was found unreadable in the kernel, if it was read.
    pub unreadable: usize,
    /// Time spent listing, diffing and applying.
    pub elapsed: Duration,
}

/// Owns some nftables tables and keeps the kernel's copy equal to the
/// desired value.
#[derive(Debug)]
pub struct Reconciler<N = NftCli> {
    nft: N,
    owned: BTreeSet<TableId>,
    /// What the kernel holds, when known: the last applied (or completely
    /// read) ruleset.
    applied: Option<Ruleset>,
}

impl<N: Nft> Reconciler<N> {
    /// A reconciler for the tables `owned`. It knows nothing of the kernel
    /// yet; the first apply lists them.
    pub fn new(nft: N, owned: impl IntoIterator<Item = TableId>) -> Reconciler<N> {
        Reconciler {
            nft,
            owned: owned.into_iter().collect(),
            applied: None,
        }
    }

    pub fn owned(&self) -> &BTreeSet<TableId> {
        &self.owned
    }

    pub fn nft(&self) -> &N {
        &self.nft
    }

    /// The state the kernel is believed to hold, if known.
    pub fn last_applied(&self) -> Option<&Ruleset> {
        self.applied.as_ref()
    }

    /// Forgets the remembered state: the next apply lists the kernel.
    pub fn forget(&mut self) {
        self.applied = None;
    }

    /// Lists the owned tables.
    pub async fn read(&self) -> Result<Observed, ReconcileError> {
        let mut observed = Observed::default();
        for table in &self.owned {
            let json = self
                .nft
                .list_table(table)
                .await
                .map_err(|source| ReconcileError::List {
                    table: table.clone(),
                    source: Box::new(source),
                })?;
            observed
                .add_table(table, json.as_deref())
                .map_err(ReconcileError::Parse)?;
        }
        Ok(observed)
    }

    /// Makes the kernel equal to `desired`, diffing against the remembered
    /// state when there is one. Owned tables absent from `desired` are
    /// deleted.
    pub async fn apply(&mut self, desired: &Ruleset) -> Result<Report, ReconcileError> {
        self.reconcile(desired, false).await
    }

    /// Lists the kernel and puts back whatever differs from `desired`
    /// (tables deleted or edited behind the agent's back).
    pub async fn repair(&mut self, desired: &Ruleset) -> Result<Report, ReconcileError> {
        self.reconcile(desired, true).await
    }

    /// Deletes every owned table. Tables already gone are not an error.
    pub async fn remove_all(&mut self) -> Result<Report, ReconcileError> {
        self.reconcile(&Ruleset::default(), true).await
    }

    fn check(&self, desired: &Ruleset) -> Result<(), ReconcileError> {
        if let Some(table) = desired.tables.keys().find(|t| !self.owned.contains(*t)) {
            return Err(ReconcileError::NotOwned {
                table: table.clone(),
            });
        }
        // What was applied passed this check: only what differs from it
        // needs checking again.
        let problems = match &self.applied {
            Some(applied) => desired.validate_against(applied),
            None => desired.validate(),
        };
        if !problems.is_empty() {
            return Err(ReconcileError::Invalid { problems });
        }
        Ok(())
    }

    async fn reconcile(
        &mut self,
        desired: &Ruleset,
        fresh: bool,
    ) -> Result<Report, ReconcileError> {
        let start = Instant::now();
        self.check(desired)?;
        let mut report = Report::default();
        let cached = if fresh { None } else { self.applied.take() };
        let result = match cached {
            Some(current) => {
                let transaction = Transaction::diff(&current, desired);
                match self.send(&transaction, &mut report).await {
                    Ok(()) => Ok(()),
                    Err(error) => {
                        // The remembered state may be stale (someone changed
                        // the kernel): try once more against the real one.
                        warn!(%error, "nftables transaction against the remembered state failed; re-reading the kernel");
                        report.retried = true;
                        self.against_kernel(desired, &mut report).await
                    }
                }
            }
            None => self.against_kernel(desired, &mut report).await,
        };
        report.elapsed = start.elapsed();
        match result {
            Ok(()) => {
                self.applied = Some(desired.clone());
                debug!(?report, "nftables reconciled");
                Ok(report)
            }
            Err(error) => {
                self.applied = None;
                Err(error)
            }
        }
    }

    async fn against_kernel(
        &mut self,
        desired: &Ruleset,
        report: &mut Report,
    ) -> Result<(), ReconcileError> {
        let observed = self.read().await?;
        report.read_kernel = true;
        report.unreadable = observed.unreadable.len();
        if !observed.is_complete() {
            info!(unreadable = ?observed.unreadable, "kernel tables hold state the model cannot read; overwriting it");
        }
        let transaction = Transaction::diff_observed(&observed, desired);
        self.send(&transaction, report).await
    }

    async fn send(
        &self,
        transaction: &Transaction,
        report: &mut Report,
    ) -> Result<(), ReconcileError> {
        if transaction.is_empty() {
            return Ok(());
        }
        let script = transaction.render();
        report.statements = transaction.len();
        report.elements = transaction.element_count();
        report.script_bytes = script.len();
        match self.nft.apply(&script).await {
            Ok(()) => Ok(()),
            Err(NftError::Failed {
                diagnostics,
                stderr,
                status,
                command,
            }) => {
                let mut rejections: Vec<Rejection> = diagnostics
                    .iter()
                    .filter_map(|d| {
                        let line = d.line?;
                        transaction.statement_at_line(line)?;
                        Some(rejection(line, &script, d.columns, &d.message))
                    })
                    .collect();
                if rejections.is_empty() {
                    return Err(ReconcileError::Apply {
                        statements: transaction.len(),
                        source: Box::new(NftError::Failed {
                            command,
                            status,
                            stderr,
                            diagnostics,
                        }),
                    });
                }
                let first = rejections.remove(0);
                Err(ReconcileError::Rejected {
                    statements: transaction.len(),
                    first: Box::new(first),
                    others: rejections,
                })
            }
            Err(source) => Err(ReconcileError::Apply {
                statements: transaction.len(),
                source: Box::new(source),
            }),
        }
    }
}

/// Longest statement text quoted in an error.
const MAX_QUOTED: usize = 200;

fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn rejection(
    line: usize,
    script: &str,
    columns: Option<(usize, usize)>,
    message: &str,
) -> Rejection {
    let text = script.lines().nth(line - 1).unwrap_or_default();
    let near = columns.and_then(|(first, last)| {
        let (first, last) = (first.checked_sub(1)?, last.min(text.len()));
        let span = text.get(first..last)?;
        // Pointing at the whole statement adds nothing.
        (span.len() < text.len()).then(|| shorten(span, MAX_QUOTED))
    });
    Rejection {
        line,
        statement: shorten(text, MAX_QUOTED),
        near,
        message: message.to_string(),
    }
}

/// Blocking entry points, for a dedicated thread or `spawn_blocking`.
impl<N: BlockingNft> Reconciler<N> {
    /// [`Reconciler::apply`], blocking.
    pub fn apply_blocking(&mut self, desired: &Ruleset) -> Result<Report, ReconcileError> {
        futures::executor::block_on(self.apply(desired))
    }

    /// [`Reconciler::repair`], blocking.
    pub fn repair_blocking(&mut self, desired: &Ruleset) -> Result<Report, ReconcileError> {
        futures::executor::block_on(self.repair(desired))
    }

    /// [`Reconciler::read`], blocking.
    pub fn read_blocking(&self) -> Result<Observed, ReconcileError> {
        futures::executor::block_on(self.read())
    }

    /// [`Reconciler::remove_all`], blocking.
    pub fn remove_all_blocking(&mut self) -> Result<Report, ReconcileError> {
        futures::executor::block_on(self.remove_all())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::future::Future;
    use std::sync::Mutex;

    use super::*;
    use crate::model::{Chain, DataType, Rule, Set, Table, Value};

    /// Records what would be sent; answers listings with "no table" and
    /// applies with queued outcomes (success when the queue is empty).
    #[derive(Debug, Default)]
    struct FakeNft {
        listings: Mutex<usize>,
        scripts: Mutex<Vec<String>>,
        failures: Mutex<VecDeque<String>>,
    }

    impl Nft for FakeNft {
        fn list_table(
            &self,
            _: &TableId,
        ) -> impl Future<Output = Result<Option<String>, NftError>> + Send {
            *self.listings.lock().unwrap() += 1;
            async { Ok(None) }
        }

        fn apply(&self, script: &str) -> impl Future<Output = Result<(), NftError>> + Send {
            self.scripts.lock().unwrap().push(script.to_string());
            let failure = self.failures.lock().unwrap().pop_front();
            async move {
                match failure {
                    None => Ok(()),
                    Some(stderr) => Err(NftError::Failed {
                        command: "nft -f -".into(),
                        status: "exit status: 1".into(),
                        diagnostics: crate::nft::parse_diagnostics(&stderr),
                        stderr,
                    }),
                }
            }
        }
    }

    fn desired(elements: &[u8]) -> Ruleset {
        Ruleset::new().with_table(
            TableId::inet("calico"),
            Table::new()
                .with_set(
                    "s",
                    Set::new(DataType::Ipv4Addr, false)
                        .with_elements(elements.iter().map(|e| Value::addr([10, 0, 0, *e]))),
                )
                .with_chain("c", Chain::regular([Rule::new().accept()])),
        )
    }

    fn reconciler() -> Reconciler<FakeNft> {
        Reconciler::new(FakeNft::default(), [TableId::inet("calico")])
    }

    #[test]
    fn lists_once_then_diffs_against_memory() {
        let mut r = reconciler();
        let first = futures::executor::block_on(r.apply(&desired(&[1]))).unwrap();
        assert!(first.read_kernel);
        assert_eq!(first.statements, 5);
        let second = futures::executor::block_on(r.apply(&desired(&[1, 2]))).unwrap();
        assert!(!second.read_kernel);
        assert_eq!((second.statements, second.elements), (1, 1));
        assert_eq!(*r.nft().listings.lock().unwrap(), 1);
        assert_eq!(
            r.nft().scripts.lock().unwrap().last().unwrap(),
            "add element inet calico s { 10.0.0.2 }\n"
        );
        assert_eq!(r.last_applied(), Some(&desired(&[1, 2])));
        // Nothing to do: nothing sent.
        let third = futures::executor::block_on(r.apply(&desired(&[1, 2]))).unwrap();
        assert_eq!(third.statements, 0);
        assert_eq!(r.nft().scripts.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_failure_against_memory_is_retried_against_the_kernel_then_reported() {
        let mut r = reconciler();
        futures::executor::block_on(r.apply(&desired(&[1]))).unwrap();
        let refusal = "/dev/stdin:1:40-48: Error: Could not process rule: No such file or directory\n\
                       add element inet calico s { 10.0.0.2 }\n";
        r.nft()
            .failures
            .lock()
            .unwrap()
            .extend([refusal.to_string(), refusal.to_string()]);
        let err = futures::executor::block_on(r.apply(&desired(&[1, 2]))).unwrap_err();
        assert_eq!(
            *r.nft().listings.lock().unwrap(),
            2,
            "the retry listed the kernel"
        );
        let ReconcileError::Rejected {
            first, statements, ..
        } = &err
        else {
            panic!("{err}");
        };
        // The retry diffed against an empty kernel: the whole table.
        assert_eq!(*statements, 5);
        assert_eq!(first.line, 1);
        assert_eq!(first.statement, "add table inet calico");
        assert!(
            err.to_string().contains("No such file or directory"),
            "{err}"
        );
        assert_eq!(
            r.last_applied(),
            None,
            "after a failure the kernel state is unknown"
        );
    }

    #[test]
    fn failures_without_a_position_keep_nfts_output() {
        let mut r = reconciler();
        r.nft()
            .failures
            .lock()
            .unwrap()
            .push_back("netlink: Error: interval overlaps with an existing one\n".into());
        let err = futures::executor::block_on(r.apply(&desired(&[1]))).unwrap_err();
        assert!(matches!(err, ReconcileError::Apply { .. }), "{err}");
        let source = std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default();
        assert!(source.contains("interval overlaps"), "{source}");
    }

    #[test]
    fn invalid_or_foreign_desired_state_is_refused_before_anything_runs() {
        let mut r = reconciler();
        let foreign = Ruleset::new().with_table(TableId::inet("kube-proxy"), Table::new());
        assert!(matches!(
            futures::executor::block_on(r.apply(&foreign)),
            Err(ReconcileError::NotOwned { .. })
        ));
        let mut invalid = desired(&[]);
        invalid.table_mut(TableId::inet("calico")).chains.insert(
            "c".into(),
            std::sync::Arc::new(Chain::regular([Rule::new().jump("missing")])),
        );
        assert!(matches!(
            futures::executor::block_on(r.apply(&invalid)),
            Err(ReconcileError::Invalid { .. })
        ));
        assert_eq!(*r.nft().listings.lock().unwrap(), 0);
        assert!(r.nft().scripts.lock().unwrap().is_empty());
    }

    #[test]
    fn long_statements_are_shortened_around_the_offending_part() {
        let line = format!(
            "add element inet calico s {{ {} }}",
            vec!["10.0.0.1"; 100].join(", ")
        );
        let r = rejection(1, &line, Some((29, 36)), "boom");
        assert!(
            r.statement.chars().count() <= MAX_QUOTED + 1,
            "{}",
            r.statement
        );
        assert_eq!(r.near.as_deref(), Some("10.0.0.1"));
    }
}
