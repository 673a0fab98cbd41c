//! The key/value interface both engines implement.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

use crate::Error;

/// A point in the datastore's history. Every successful write moves the
/// whole store to a new, higher revision (as etcd does); a store that was
/// never written to is at revision 1.
pub type Revision = i64;

/// One key with its value and the revisions that created and last modified
/// it.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    /// The stored bytes, verbatim (JSON for Calico resources).
    pub value: Vec<u8>,
    /// The revision at which this key was (most recently) created.
    pub create_revision: Revision,
    /// The revision of the last write to this key; what
    /// [`Backend::update`] and [`Backend::delete`] compare against.
    pub mod_revision: Revision,
}

impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values are resources and may be large: show their size, and the
        // text only when short.
        let mut s = f.debug_struct("KeyValue");
        s.field("key", &self.key);
        match std::str::from_utf8(&self.value) {
            Ok(text) if text.len() <= 64 => s.field("value", &text),
            _ => s.field("value_len", &self.value.len()),
        };
        s.field("create_revision", &self.create_revision)
            .field("mod_revision", &self.mod_revision)
            .finish()
    }
}

/// All keys under a prefix, as of one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Sorted by key (byte order).
    pub kvs: Vec<KeyValue>,
    /// The store's revision when the listing was taken; watch from here to
    /// see every later change.
    pub revision: Revision,
}

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A key was created or its value replaced. `kv.mod_revision` is the
    /// event's revision; `prev` is the value it replaced, if any.
    Put {
        kv: KeyValue,
        prev: Option<KeyValue>,
    },
    /// A key was deleted at `mod_revision`; `prev` is its last value.
    Delete {
        key: String,
        mod_revision: Revision,
        prev: Option<KeyValue>,
    },
}

impl Event {
    pub fn key(&self) -> &str {
        match self {
            Event::Put { kv, .. } => &kv.key,
            Event::Delete { key, .. } => key,
        }
    }

    /// The revision at which the change happened.
    pub fn revision(&self) -> Revision {
        match self {
            Event::Put { kv, .. } => kv.mod_revision,
            Event::Delete { mod_revision, .. } => *mod_revision,
        }
    }
}

type BoxedEventStream = Pin<Box<dyn Stream<Item = Result<Event, Error>> + Send>>;

/// The events of one watch, in revision order.
///
/// An `Err` item is always the last one: after it the stream ends. The
/// expected one is [`Error::Compacted`], meaning the history the watch
/// needed is gone and the caller must list again and watch from the
/// listing's revision (what Calico calls a resync). Dropping the stream
/// cancels the watch.
pub struct WatchStream {
    inner: BoxedEventStream,
    finished: bool,
}

impl WatchStream {
    pub(crate) fn new(
        inner: impl Stream<Item = Result<Event, Error>> + Send + 'static,
    ) -> WatchStream {
        WatchStream {
            inner: Box::pin(inner),
            finished: false,
        }
    }

    /// The next event, `None` once the stream has ended.
    pub async fn recv(&mut self) -> Option<Result<Event, Error>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for WatchStream {
    type Item = Result<Event, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        let item = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Err(_)) | None) = &item {
            self.finished = true;
        }
        item
    }
}

impl fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchStream")
            .field("finished", &self.finished)
            .finish()
    }
}

/// A key/value store with revisions, compare-and-swap and watch: what
/// Calico's resource layer needs from etcd, and what the embedded engine
/// provides on one machine.
///
/// Keys are non-empty strings (Calico's are paths such as
/// `/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool`);
/// values are bytes, stored verbatim. Prefixes are plain string prefixes:
/// `list("/calico/ipam/")` returns every key starting with it, and the empty
/// prefix means every key.
///
/// Every future returned is `Send`, so callers may spawn them.
pub trait Backend: Send + Sync {
    /// The current value of `key`, or `None` if it does not exist.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<KeyValue>, Error>> + Send;

    /// Every key starting with `prefix`, sorted by key, with the revision the
    /// listing was taken at.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Listing, Error>> + Send;

    /// Creates `key`; fails with [`Error::AlreadyExists`] if it exists.
    fn create(
        &self,
        key: &str,
        value: &[u8],
    ) -> impl Future<Output = Result<KeyValue, Error>> + Send;

    /// Replaces the value of `key` if its mod revision is still
    /// `expected_mod_revision`; otherwise fails with [`Error::Conflict`]
    /// (carrying the actual revision), or [`Error::NotFound`] if it is gone.
    fn update(
        &self,
        key: &str,
        value: &[u8],
        expected_mod_revision: Revision,
    ) -> impl Future<Output = Result<KeyValue, Error>> + Send;

    /// Creates or replaces `key` unconditionally.
    fn put(&self, key: &str, value: &[u8]) -> impl Future<Output = Result<KeyValue, Error>> + Send;

    /// Deletes `key` and returns its last value. With
    /// `Some(expected_mod_revision)` only if the key is unchanged since
    /// ([`Error::Conflict`] otherwise). [`Error::NotFound`] if it does not
    /// exist.
    fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<Revision>,
    ) -> impl Future<Output = Result<KeyValue, Error>> + Send;

    /// Every change to keys starting with `prefix` at a revision greater
    /// than `after_revision`, in revision order, then live changes as they
    /// happen. Pass a [`Listing::revision`] to continue from a list.
    ///
    /// If that history has been compacted, the stream yields
    /// [`Error::Compacted`] and ends.
    fn watch(
        &self,
        prefix: &str,
        after_revision: Revision,
    ) -> impl Future<Output = Result<WatchStream, Error>> + Send;

    /// The store's current revision.
    fn revision(&self) -> impl Future<Output = Result<Revision, Error>> + Send;

    /// Discards the history before `revision`: watches that need it report
    /// [`Error::Compacted`]. Compacting to a revision at or below an earlier
    /// compaction does nothing; a revision in the future is
    /// [`Error::FutureRevision`].
    fn compact(&self, revision: Revision) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Checks a key the way etcd does (non-empty) so both engines refuse the
/// same input.
pub(crate) fn validate_key(key: &str) -> Result<(), Error> {
    if key.is_empty() {
        return Err(Error::InvalidKey {
            key: key.to_owned(),
            reason: "keys must not be empty",
        });
    }
    Ok(())
}

/// The smallest byte string greater than every string starting with
/// `prefix`; `None` when there is no upper bound (the empty prefix).
///
/// Valid UTF-8 never contains the byte 0xFF, so incrementing the last byte
/// never overflows for a non-empty string prefix.
pub(crate) fn prefix_end(prefix: &str) -> Option<Vec<u8>> {
    let mut end = prefix.as_bytes().to_vec();
    let last = end.pop()?;
    end.push(last + 1);
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("/calico/").unwrap(), b"/calico0".to_vec());
        let end = prefix_end("/a/é").unwrap();
        assert!("/a/é".as_bytes() < end.as_slice());
        assert!("/a/éz".as_bytes() < end.as_slice());
        assert!("/a/f".as_bytes() > end.as_slice() || "/a/f".as_bytes() < "/a/é".as_bytes());
    }

    #[test]
    fn empty_keys_are_refused() {
        assert!(matches!(validate_key(""), Err(Error::InvalidKey { .. })));
        assert!(validate_key("/calico").is_ok());
    }

    #[test]
    fn event_accessors() {
        let kv = KeyValue {
            key: "k".into(),
            value: b"v".to_vec(),
            create_revision: 2,
            mod_revision: 5,
        };
        let put = Event::Put { kv, prev: None };
        assert_eq!((put.key(), put.revision()), ("k", 5));
        let del = Event::Delete {
            key: "d".into(),
            mod_revision: 7,
            prev: None,
        };
        assert_eq!((del.key(), del.revision()), ("d", 7));
    }
}
