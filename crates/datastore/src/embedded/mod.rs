//! The embedded engine: one SQLite file in WAL mode, shared safely by every
//! process on the machine (the agent, each CNI plugin invocation,
//! calicoctl).
//!
//! - Revisions: a single store-wide counter in the file, bumped by each
//!   write inside its `BEGIN IMMEDIATE` transaction, so revisions are
//!   totally ordered across processes, as in etcd.
//! - Concurrency: SQLite's write lock serialises writers; a writer that
//!   finds it taken waits up to [`EmbeddedOptions::busy_timeout`].
//! - Watch: every write appends to an event log in the same transaction. A
//!   watch is a thread with its own connection that re-reads the log when
//!   `PRAGMA data_version` says another connection committed (checked every
//!   [`EmbeddedOptions::poll_interval`], or at once for commits made in this
//!   process).
//! - Compaction trims the log; watches that need trimmed history get
//!   [`Error::Compacted`]. With [`EmbeddedOptions::history`] set, the log
//!   trims itself.
//! - Files: the WAL stays in place when a process closes the datastore
//!   (no checkpoint on close); commits checkpoint it once it reaches
//!   [`WAL_AUTOCHECKPOINT_PAGES`]. Otherwise the last process to close
//!   the file would checkpoint everything, fsync twice and delete the WAL,
//!   and the next writer would create it again (two more fsyncs): for
//!   short-lived processes such as CNI plugin invocations, which are often
//!   the only ones with the file open, that would be most of their
//!   datastore time.
//!
//! By default no SQLite call runs on an async task: operations go through
//! `spawn_blocking` with a small pool of connections. A short-lived
//! process doing one thing at a time may run them on its own thread
//! instead ([`Execution::CallingThread`]).

mod store;
mod watch;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode};

use crate::backend::validate_key;
use crate::{Backend, Error, KeyValue, Listing, Revision, WatchStream};

use watch::CommitSignal;

/// How much a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every commit is on disk before it returns (`synchronous=FULL`), as
    /// etcd does with its fsync per write.
    #[default]
    Full,
    /// Commits survive a process crash but the last ones may be lost on
    /// power failure (`synchronous=NORMAL`); faster.
    Normal,
}

/// Where SQL runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Execution {
    /// On tokio's blocking pool, a pooled connection each: async workers
    /// never wait for the disk or for another process's write lock. For
    /// long-running processes with many tasks (the agent, controllers).
    #[default]
    BlockingPool,
    /// On the thread that polls the operation's future, with one
    /// connection, so every operation blocks that thread until it is
    /// done. Only for a process that runs one operation at a time on a
    /// current-thread runtime and has nothing else to do meanwhile (a CNI
    /// plugin invocation): there the pool only adds two thread hand-offs
    /// per operation, a connection per concurrent read, and threads to
    /// start and join.
    CallingThread,
}

/// Size (in 4 KiB pages) at which a commit checkpoints the WAL into the
/// database file. Smaller than SQLite's default of 1000 because the WAL is
/// kept between processes: a process that opens the file while no other
/// has it open reads the whole WAL to rebuild its index.
pub const WAL_AUTOCHECKPOINT_PAGES: u32 = 256;

/// Tuning for [`EmbeddedBackend::open_with`]. The defaults suit the
/// agent, CNI plugins and calicoctl sharing one file.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// How long a writer waits for another process holding the write lock
    /// before failing with [`Error::Timeout`].
    pub busy_timeout: Duration,
    /// How often a watch checks the file for commits made by other
    /// processes.
    pub poll_interval: Duration,
    /// Keep the watch history of about this many revisions, trimming older
    /// events automatically (every 1000 revisions). `None` keeps
    /// everything until [`Backend::compact`] is called.
    pub history: Option<u64>,
    pub durability: Durability,
    pub execution: Execution,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            busy_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(5),
            history: Some(100_000),
            durability: Durability::Full,
            execution: Execution::BlockingPool,
        }
    }
}

/// Idle connections kept for reuse.
const POOL_SIZE: usize = 8;

/// The embedded datastore: see the module documentation. Cheap to clone;
/// clones share connections.
#[derive(Clone)]
pub struct EmbeddedBackend {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    target: String,
    options: EmbeddedOptions,
    idle: Mutex<Vec<Connection>>,
    commits: Arc<CommitSignal>,
}

impl fmt::Debug for EmbeddedBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedBackend")
            .field("path", &self.shared.path)
            .field("options", &self.shared.options)
            .finish()
    }
}

impl EmbeddedBackend {
    /// Opens (creating if missing, with its directory) the datastore file at
    /// `path`, with default options.
    pub async fn open(path: impl AsRef<Path>) -> Result<EmbeddedBackend, Error> {
        EmbeddedBackend::open_with(path, EmbeddedOptions::default()).await
    }

    pub async fn open_with(
        path: impl AsRef<Path>,
        options: EmbeddedOptions,
    ) -> Result<EmbeddedBackend, Error> {
        let path = path.as_ref().to_path_buf();
        let shared = Arc::new(Shared {
            target: path.display().to_string(),
            path,
            options,
            idle: Mutex::new(Vec::new()),
            commits: Arc::new(CommitSignal::default()),
        });
        let backend = EmbeddedBackend { shared };
        backend.blocking(|shared| shared.first_open()).await?;
        Ok(backend)
    }

    /// The file this datastore lives in.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Runs blocking work where [`EmbeddedOptions::execution`] says.
    async fn blocking<T, F>(&self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce(&Shared) -> T + Send + 'static,
    {
        match self.shared.options.execution {
            Execution::CallingThread => f(&self.shared),
            Execution::BlockingPool => {
                let shared = self.shared.clone();
                tokio::task::spawn_blocking(move || f(&shared))
                    .await
                    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
            }
        }
    }

    /// Runs `f` with a pooled connection, adding the file and operation to
    /// any SQLite failure.
    async fn run<T, F>(&self, operation: &'static str, key: &str, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &EmbeddedOptions) -> store::Sql<T> + Send + 'static,
    {
        let key = key.to_owned();
        self.blocking(move |shared| {
            let mut conn = shared.connection()?;
            let outcome = f(&mut conn, &shared.options);
            let result = match outcome {
                Ok(answer) => {
                    shared.give_back(conn);
                    answer
                }
                // A connection that failed may be mid-transaction or broken:
                // drop it rather than pool it.
                Err(e) => Err(shared.sql_error(operation, &key, e)),
            };
            if operation_writes(operation) && result.is_ok() {
                shared.commits.notify();
            }
            result
        })
        .await
    }
}

fn operation_writes(operation: &str) -> bool {
    matches!(operation, "create" | "update" | "put" | "delete")
}

impl Shared {
    fn first_open(&self) -> Result<(), Error> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::Open {
                path: self.path.clone(),
                source: format!("cannot create directory {}: {e}", dir.display()).into(),
            })?;
        }
        let mut conn = self.open_connection()?;
        store::init_schema(&mut conn)
            .map_err(|e| Error::Open {
                path: self.path.clone(),
                source: e.into(),
            })
            .and_then(|answer| answer)?;
        self.give_back(conn);
        Ok(())
    }

    fn open_connection(&self) -> Result<Connection, Error> {
        let open_error = |e: rusqlite::Error| Error::Open {
            path: self.path.clone(),
            source: e.into(),
        };
        let conn = Connection::open(&self.path).map_err(open_error)?;
        conn.busy_timeout(self.options.busy_timeout)
            .map_err(open_error)?;
        // Switching to WAL needs a moment alone with the file; another
        // process opening it at the same time can make that busy.
        let mut attempts = 0;
        loop {
            match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
                Ok(mode) if mode.eq_ignore_ascii_case("wal") => break,
                Ok(mode) => {
                    return Err(Error::Open {
                        path: self.path.clone(),
                        source: format!("SQLite refused WAL mode (journal mode is {mode})").into(),
                    });
                }
                Err(e) if is_busy(&e) && attempts < 50 => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(open_error(e)),
            }
        }
        let synchronous = match self.options.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {synchronous}; PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}"
        ))
        .map_err(open_error)?;
        // See the module documentation: the WAL outlives the process.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .map_err(open_error)?;
        Ok(conn)
    }

    fn connection(&self) -> Result<Connection, Error> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match pooled {
            Some(conn) => Ok(conn),
            None => self.open_connection(),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < POOL_SIZE {
            idle.push(conn);
        }
    }

    fn sql_error(&self, operation: &'static str, key: &str, e: rusqlite::Error) -> Error {
        if is_busy(&e) {
            Error::Timeout {
                target: self.target.clone(),
                operation,
                after: self.options.busy_timeout,
            }
        } else {
            Error::Operation {
                target: self.target.clone(),
                operation,
                key: key.to_owned(),
                source: e.into(),
            }
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

impl Backend for EmbeddedBackend {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, Error> {
        validate_key(key)?;
        let k = key.to_owned();
        self.run("get", key, move |conn, _| store::get(conn, &k))
            .await
    }

    async fn list(&self, prefix: &str) -> Result<Listing, Error> {
        let p = prefix.to_owned();
        self.run("list", prefix, move |conn, _| store::list(conn, &p))
            .await
    }

    async fn create(&self, key: &str, value: &[u8]) -> Result<KeyValue, Error> {
        validate_key(key)?;
        let (k, v) = (key.to_owned(), value.to_vec());
        self.run("create", key, move |conn, o| {
            store::create(conn, &k, &v, o.history)
        })
        .await
    }

    async fn update(
        &self,
        key: &str,
        value: &[u8],
        expected_mod_revision: Revision,
    ) -> Result<KeyValue, Error> {
        validate_key(key)?;
        let (k, v) = (key.to_owned(), value.to_vec());
        self.run("update", key, move |conn, o| {
            store::update(conn, &k, &v, expected_mod_revision, o.history)
        })
        .await
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<KeyValue, Error> {
        validate_key(key)?;
        let (k, v) = (key.to_owned(), value.to_vec());
        self.run("put", key, move |conn, o| {
            store::put(conn, &k, &v, o.history)
        })
        .await
    }

    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<Revision>,
    ) -> Result<KeyValue, Error> {
        validate_key(key)?;
        let k = key.to_owned();
        self.run("delete", key, move |conn, o| {
            store::delete(conn, &k, expected_mod_revision, o.history)
        })
        .await
    }

    async fn watch(&self, prefix: &str, after_revision: Revision) -> Result<WatchStream, Error> {
        let prefix = prefix.to_owned();
        self.blocking(move |shared| {
            let conn = shared.open_connection()?;
            watch::spawn(
                conn,
                watch::Target {
                    name: shared.target.clone(),
                    prefix,
                    poll_interval: shared.options.poll_interval,
                },
                after_revision,
                shared.commits.clone(),
            )
        })
        .await
    }

    async fn revision(&self) -> Result<Revision, Error> {
        self.run("revision", "", |conn, _| store::revision(conn))
            .await
    }

    async fn compact(&self, revision: Revision) -> Result<(), Error> {
        self.run("compact", "", move |conn, _| store::compact(conn, revision))
            .await
    }
}
