//! Watches on the embedded engine: one thread per watch polls the event
//! log and feeds a channel the async side reads.

use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::mpsc;

use super::store;
use crate::{Error, Event, Revision, WatchStream};

/// Events read from the log per query.
const BATCH: usize = 512;

/// Events buffered between the polling thread and the consumer; a slow
/// consumer makes the thread wait rather than memory grow.
const CHANNEL: usize = 1024;

/// Wakes this process's watches as soon as one of its own writes commits,
/// instead of at their next poll.
#[derive(Debug, Default)]
pub(crate) struct CommitSignal {
    generation: Mutex<u64>,
    changed: Condvar,
}

impl CommitSignal {
    pub(crate) fn notify(&self) {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.changed.notify_all();
    }

    fn generation(&self) -> u64 {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the generation differs from `seen` or `timeout` passes.
    fn wait(&self, seen: u64, timeout: Duration) {
        let guard = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self
            .changed
            .wait_timeout_while(guard, timeout, |generation| *generation == seen);
    }
}

/// What one watch looks at.
pub(super) struct Target {
    /// The datastore file, for error messages.
    pub name: String,
    pub prefix: String,
    pub poll_interval: Duration,
}

/// Starts the polling thread for a watch of `target.prefix` after revision
/// `after`.
pub(super) fn spawn(
    conn: Connection,
    target: Target,
    after: Revision,
    commits: Arc<CommitSignal>,
) -> Result<WatchStream, Error> {
    let (tx, mut rx) = mpsc::channel(CHANNEL);
    let name = target.name.clone();
    let prefix = target.prefix.clone();
    thread::Builder::new()
        .name("datastore-watch".into())
        .spawn(move || poll(conn, target, after, &commits, &tx))
        .map_err(|e| Error::Operation {
            target: name,
            operation: "watch",
            key: prefix,
            source: format!("cannot start the watch thread: {e}").into(),
        })?;
    Ok(WatchStream::new(futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
    })))
}

fn poll(
    mut conn: Connection,
    target: Target,
    mut after: Revision,
    commits: &CommitSignal,
    tx: &mpsc::Sender<Result<Event, Error>>,
) {
    let fail = |e: rusqlite::Error| Error::Operation {
        target: target.name.clone(),
        operation: "watch",
        key: target.prefix.clone(),
        source: e.into(),
    };
    let mut last_version = None;
    let mut seen_generation = commits.generation();
    loop {
        if tx.is_closed() {
            return;
        }
        // Read the version before the log: a commit landing in between
        // changes the version again, so it is never missed.
        let version = match store::data_version(&conn) {
            Ok(v) => v,
            Err(e) => {
                let _ = tx.blocking_send(Err(fail(e)));
                return;
            }
        };
        if last_version != Some(version) {
            loop {
                let batch = match store::read_events(&mut conn, &target.prefix, after, BATCH) {
                    Ok(Ok(batch)) => batch,
                    Ok(Err(answer)) => {
                        let _ = tx.blocking_send(Err(answer));
                        return;
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(fail(e)));
                        return;
                    }
                };
                let full = batch.events.len() == BATCH;
                for event in batch.events {
                    if tx.blocking_send(Ok(event)).is_err() {
                        return;
                    }
                }
                after = batch.scanned_to;
                if !full {
                    break;
                }
            }
            last_version = Some(version);
        }
        commits.wait(seen_generation, target.poll_interval);
        seen_generation = commits.generation();
    }
}
