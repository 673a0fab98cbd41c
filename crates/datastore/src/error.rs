//! What can go wrong talking to a datastore.

use std::path::PathBuf;
use std::time::Duration;

use crate::Revision;
use crate::config::ConfigError;

/// A boxed cause, so engine-specific error types stay out of the API.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors from every backend operation. The first five variants are
/// answers about the data (callers match on them); the rest say which
/// datastore or file failed and carry the cause as their source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("key {key} does not exist")]
    NotFound { key: String },

    #[error("key {key} already exists")]
    AlreadyExists { key: String },

    #[error(
        "key {key} was modified concurrently: expected mod revision {expected}, found {actual}"
    )]
    Conflict {
        key: String,
        expected: Revision,
        actual: Revision,
    },

    /// The history a watch needed is gone: list again and watch from the
    /// listing's revision.
    #[error(
        "watch history from revision {requested} has been compacted (oldest revision available is {compacted}); list again and watch from the listing's revision"
    )]
    Compacted {
        /// The first revision the watch needed (its `after_revision` + 1).
        requested: Revision,
        /// History before this revision is gone.
        compacted: Revision,
    },

    #[error("revision {requested} is in the future (the datastore is at revision {current})")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },

    #[error("invalid key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },

    /// The datastore could not be reached, or the connection to it failed.
    #[error("datastore {target} is unavailable")]
    Unavailable {
        target: String,
        #[source]
        source: BoxError,
    },

    #[error("datastore {target} did not complete {operation} within {after:?}")]
    Timeout {
        target: String,
        operation: &'static str,
        after: Duration,
    },

    /// The datastore refused our credentials (user name/password or client
    /// certificate).
    #[error("datastore {target} refused the credentials of {identity}")]
    Auth {
        target: String,
        identity: String,
        #[source]
        source: BoxError,
    },

    /// A TLS certificate or key could not be read or parsed.
    #[error("cannot use TLS {what} {file}")]
    Tls {
        /// The file, or which inline config field carried the PEM.
        file: String,
        /// "CA certificate", "client certificate" or "client key".
        what: &'static str,
        #[source]
        source: BoxError,
    },

    /// The embedded datastore file (or its directory) could not be opened
    /// or created.
    #[error("cannot open the embedded datastore {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: BoxError,
    },

    /// Any other failure of one operation.
    #[error("datastore {target}: {operation}{} failed", of_key(.key))]
    Operation {
        target: String,
        operation: &'static str,
        key: String,
        #[source]
        source: BoxError,
    },

    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl Error {
    /// Whether retrying the same call later may succeed (the datastore was
    /// down, busy or slow), as opposed to an answer about the data.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::Timeout { .. })
    }
}

fn of_key(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!(" of {key}")
    }
}

/// A plain message as an error source, for causes that are only text.
#[derive(Debug)]
pub(crate) struct Message(pub String);

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

/// Formats an error with its whole `source()` chain, `: `-separated, for
/// messages printed once at the edge.
pub fn display_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some libraries repeat their source in their own message.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
