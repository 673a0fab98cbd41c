//! The SQL behind the embedded engine: synchronous functions over one
//! SQLite connection. Callers run them on a blocking thread.
//!
//! Layout (schema version 1):
//! - `kv`: the current value of every key, with its create and mod
//!   revisions.
//! - `events`: one row per write, keyed by revision, carrying the new value
//!   and the value it replaced: the history watches read. Compaction deletes
//!   rows below a revision.
//! - `meta`: the store revision (`revision`) and the compaction point
//!   (`compacted`).
//!
//! Every write runs in a `BEGIN IMMEDIATE` transaction that takes the
//! database write lock first, so concurrent writers (from any process)
//! serialise there and each sees the latest revision.
//!
//! Functions return `rusqlite::Result<Result<T, Error>>`: the outer error is
//! a failure of SQLite itself (the caller adds which file and operation),
//! the inner one an answer about the data (not found, conflict, ...).

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::backend::prefix_end;
use crate::{Error, Event, KeyValue, Listing, Revision};

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    key BLOB PRIMARY KEY,
    value BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    revision INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    deleted INTEGER NOT NULL,
    value BLOB,
    create_revision INTEGER NOT NULL,
    prev_value BLOB,
    prev_create_revision INTEGER,
    prev_mod_revision INTEGER
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 1), ('compacted', 0);
";

/// Automatic compaction runs when the revision is a multiple of this.
const AUTO_COMPACT_EVERY: Revision = 1000;

pub(super) type Sql<T> = rusqlite::Result<Result<T, Error>>;

/// Creates the tables if this is a new file, and refuses a file written by
/// a newer schema.
pub(super) fn init_schema(conn: &mut Connection) -> Sql<()> {
    // The common case, a file already set up, needs no write (and so no
    // write lock and no fsync): opening stays cheap for short-lived
    // processes such as CNI plugin invocations.
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == SCHEMA_VERSION {
        return Ok(Ok(()));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Ok(Err(Error::Open {
            path: conn_path(&tx),
            source: format!(
                "the file has schema version {version}, newer than this program's {SCHEMA_VERSION}; \
                 upgrade this program"
            )
            .into(),
        }));
    }
    tx.execute_batch(SCHEMA)?;
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    tx.commit()?;
    Ok(Ok(()))
}

fn conn_path(conn: &Connection) -> std::path::PathBuf {
    conn.path().unwrap_or_default().into()
}

fn key_from_blob(index: usize, bytes: Vec<u8>) -> rusqlite::Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Blob, Box::new(e))
    })
}

fn meta(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT value FROM meta WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
}

fn set_meta(conn: &Connection, name: &str, value: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE meta SET value = ?2 WHERE name = ?1")?
        .execute(params![name, value])?;
    Ok(())
}

fn current(conn: &Connection, key: &str) -> rusqlite::Result<Option<KeyValue>> {
    conn.prepare_cached("SELECT value, create_revision, mod_revision FROM kv WHERE key = ?1")?
        .query_row([key.as_bytes()], |r| {
            Ok(KeyValue {
                key: key.to_owned(),
                value: r.get(0)?,
                create_revision: r.get(1)?,
                mod_revision: r.get(2)?,
            })
        })
        .optional()
}

pub(super) fn get(conn: &mut Connection, key: &str) -> Sql<Option<KeyValue>> {
    current(conn, key).map(Ok)
}

pub(super) fn revision(conn: &mut Connection) -> Sql<Revision> {
    meta(conn, "revision").map(Ok)
}

pub(super) fn list(conn: &mut Connection, prefix: &str) -> Sql<Listing> {
    // One read transaction: the rows and the revision come from the same
    // snapshot.
    let tx = conn.transaction()?;
    let revision = meta(&tx, "revision")?;
    let end = prefix_end(prefix);
    let mut stmt = tx.prepare_cached(
        "SELECT key, value, create_revision, mod_revision FROM kv \
         WHERE key >= ?1 AND (?2 IS NULL OR key < ?2) ORDER BY key",
    )?;
    let kvs = stmt
        .query_map(params![prefix.as_bytes(), end], |r| {
            Ok(KeyValue {
                key: key_from_blob(0, r.get(0)?)?,
                value: r.get(1)?,
                create_revision: r.get(2)?,
                mod_revision: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    drop(stmt);
    tx.finish()?;
    Ok(Ok(Listing { kvs, revision }))
}

/// What a write does to one key, decided after reading its current state
/// (`prev`) inside the write transaction.
enum Write<'a> {
    Put {
        value: &'a [u8],
        prev: Option<KeyValue>,
    },
    Delete {
        prev: KeyValue,
    },
}

/// Applies `write` to `key` at the next revision, logs the event, and
/// commits.
fn apply(
    tx: Transaction<'_>,
    key: &str,
    write: Write<'_>,
    history: Option<u64>,
) -> rusqlite::Result<KeyValue> {
    let revision = meta(&tx, "revision")? + 1;
    let prev = match &write {
        Write::Put { prev, .. } => prev.as_ref(),
        Write::Delete { prev } => Some(prev),
    };
    let (prev_value, prev_create, prev_mod) = match prev {
        Some(p) => (
            Some(p.value.as_slice()),
            Some(p.create_revision),
            Some(p.mod_revision),
        ),
        None => (None, None, None),
    };
    let result = match &write {
        Write::Put { value, prev } => {
            let create_revision = prev.as_ref().map_or(revision, |p| p.create_revision);
            tx.prepare_cached(
                "INSERT INTO kv (key, value, create_revision, mod_revision) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, mod_revision = excluded.mod_revision",
            )?
            .execute(params![key.as_bytes(), value, create_revision, revision])?;
            tx.prepare_cached(
                "INSERT INTO events (revision, key, deleted, value, create_revision, \
                 prev_value, prev_create_revision, prev_mod_revision) VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                revision,
                key.as_bytes(),
                value,
                create_revision,
                prev_value,
                prev_create,
                prev_mod
            ])?;
            KeyValue {
                key: key.to_owned(),
                value: value.to_vec(),
                create_revision,
                mod_revision: revision,
            }
        }
        Write::Delete { prev } => {
            tx.prepare_cached("DELETE FROM kv WHERE key = ?1")?
                .execute([key.as_bytes()])?;
            tx.prepare_cached(
                "INSERT INTO events (revision, key, deleted, value, create_revision, \
                 prev_value, prev_create_revision, prev_mod_revision) VALUES (?1, ?2, 1, NULL, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                revision,
                key.as_bytes(),
                prev.create_revision,
                prev_value,
                prev_create,
                prev_mod
            ])?;
            prev.clone()
        }
    };
    set_meta(&tx, "revision", revision)?;
    if let Some(history) = history
        && revision % AUTO_COMPACT_EVERY == 0
    {
        let keep_from = revision - history as Revision;
        if keep_from > meta(&tx, "compacted")? {
            compact_in(&tx, keep_from)?;
        }
    }
    tx.commit()?;
    Ok(result)
}

fn begin_write(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

pub(super) fn create(
    conn: &mut Connection,
    key: &str,
    value: &[u8],
    history: Option<u64>,
) -> Sql<KeyValue> {
    let tx = begin_write(conn)?;
    if current(&tx, key)?.is_some() {
        return Ok(Err(Error::AlreadyExists {
            key: key.to_owned(),
        }));
    }
    apply(tx, key, Write::Put { value, prev: None }, history).map(Ok)
}

pub(super) fn update(
    conn: &mut Connection,
    key: &str,
    value: &[u8],
    expected: Revision,
    history: Option<u64>,
) -> Sql<KeyValue> {
    let tx = begin_write(conn)?;
    let prev = match current(&tx, key)? {
        None => {
            return Ok(Err(Error::NotFound {
                key: key.to_owned(),
            }));
        }
        Some(prev) if prev.mod_revision != expected => {
            return Ok(Err(Error::Conflict {
                key: key.to_owned(),
                expected,
                actual: prev.mod_revision,
            }));
        }
        Some(prev) => prev,
    };
    apply(
        tx,
        key,
        Write::Put {
            value,
            prev: Some(prev),
        },
        history,
    )
    .map(Ok)
}

pub(super) fn put(
    conn: &mut Connection,
    key: &str,
    value: &[u8],
    history: Option<u64>,
) -> Sql<KeyValue> {
    let tx = begin_write(conn)?;
    let prev = current(&tx, key)?;
    apply(tx, key, Write::Put { value, prev }, history).map(Ok)
}

pub(super) fn delete(
    conn: &mut Connection,
    key: &str,
    expected: Option<Revision>,
    history: Option<u64>,
) -> Sql<KeyValue> {
    let tx = begin_write(conn)?;
    let prev = match (current(&tx, key)?, expected) {
        (None, _) => {
            return Ok(Err(Error::NotFound {
                key: key.to_owned(),
            }));
        }
        (Some(prev), Some(expected)) if prev.mod_revision != expected => {
            return Ok(Err(Error::Conflict {
                key: key.to_owned(),
                expected,
                actual: prev.mod_revision,
            }));
        }
        (Some(prev), _) => prev,
    };
    apply(tx, key, Write::Delete { prev }, history).map(Ok)
}

fn compact_in(tx: &Transaction<'_>, revision: Revision) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM events WHERE revision < ?1")?
        .execute([revision])?;
    set_meta(tx, "compacted", revision)
}

pub(super) fn compact(conn: &mut Connection, revision: Revision) -> Sql<()> {
    let tx = begin_write(conn)?;
    let current = meta(&tx, "revision")?;
    if revision > current {
        return Ok(Err(Error::FutureRevision {
            requested: revision,
            current,
        }));
    }
    if revision <= meta(&tx, "compacted")? {
        return Ok(Ok(()));
    }
    compact_in(&tx, revision)?;
    tx.commit()?;
    Ok(Ok(()))
}

/// Events read by one poll of a watch.
#[derive(Debug)]
pub(super) struct EventBatch {
    pub events: Vec<Event>,
    /// Every revision up to this one has been looked at (matching or not).
    pub scanned_to: Revision,
}

/// Events for keys under `prefix` after revision `after`, at most `limit`
/// of them; [`Error::Compacted`] if part of that history is gone.
pub(super) fn read_events(
    conn: &mut Connection,
    prefix: &str,
    after: Revision,
    limit: usize,
) -> Sql<EventBatch> {
    let tx = conn.transaction()?;
    let compacted = meta(&tx, "compacted")?;
    if after + 1 < compacted {
        return Ok(Err(Error::Compacted {
            requested: after + 1,
            compacted,
        }));
    }
    let current = meta(&tx, "revision")?;
    let end = prefix_end(prefix);
    let mut stmt = tx.prepare_cached(
        "SELECT revision, key, deleted, value, create_revision, prev_value, prev_create_revision, \
         prev_mod_revision FROM events \
         WHERE revision > ?1 AND key >= ?2 AND (?3 IS NULL OR key < ?3) ORDER BY revision LIMIT ?4",
    )?;
    let events = stmt
        .query_map(params![after, prefix.as_bytes(), end, limit as i64], |r| {
            let revision: Revision = r.get(0)?;
            let key = key_from_blob(1, r.get(1)?)?;
            let deleted: bool = r.get(2)?;
            let prev = match r.get::<_, Option<Vec<u8>>>(5)? {
                Some(value) => Some(KeyValue {
                    key: key.clone(),
                    value,
                    create_revision: r.get(6)?,
                    mod_revision: r.get(7)?,
                }),
                None => None,
            };
            Ok(if deleted {
                Event::Delete {
                    key,
                    mod_revision: revision,
                    prev,
                }
            } else {
                Event::Put {
                    kv: KeyValue {
                        key,
                        value: r.get(3)?,
                        create_revision: r.get(4)?,
                        mod_revision: revision,
                    },
                    prev,
                }
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    drop(stmt);
    tx.finish()?;
    let scanned_to = if events.len() == limit {
        events.last().map_or(current, Event::revision)
    } else {
        current
    };
    Ok(Ok(EventBatch { events, scanned_to }))
}

/// SQLite's counter that changes whenever another connection commits.
pub(super) fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("PRAGMA data_version")?
        .query_row([], |r| r.get(0))
}
