//! Typed watches: the key/value events of one kind as resource events.

use futures::{Stream, StreamExt};

use calico_datastore::{Backend, Event, Revision};
use calico_model::kind::Kind;
use calico_model::resource::AnyResource;

use crate::client::{Client, decode};
use crate::error::{Error, ResourceId};
use calico_model::keys;

/// One change to a watched kind.
#[derive(Debug)]
pub enum WatchEvent {
    /// A resource was created.
    Added(AnyResource),
    /// A resource was replaced; `previous` is the value it replaced when
    /// the datastore reported it.
    Modified {
        resource: AnyResource,
        previous: Option<Box<AnyResource>>,
    },
    /// A resource was deleted at `revision`; `previous` is its last value
    /// when the datastore reported it.
    Deleted {
        id: ResourceId,
        revision: Revision,
        previous: Option<Box<AnyResource>>,
    },
    /// The history the watch needed is gone: list again and watch from the
    /// listing's `resource_version` (what Calico calls a resync). Always
    /// the last event.
    Resync { compacted: Revision },
    /// One event could not be read (a malformed stored value); the watch
    /// goes on.
    Error(Error),
}

impl<B: Backend> Client<B> {
    /// Every change to resources of `kind` (in `namespace`, when given and
    /// not empty) after `resource_version` (a listing's, or `None` for "from
    /// now").
    pub async fn watch(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        resource_version: Option<&str>,
    ) -> Result<impl Stream<Item = WatchEvent> + Send + 'static, Error> {
        let datastore = |source| Error::DatastoreList {
            kind,
            source: Box::new(source),
        };
        let after = match resource_version.filter(|v| !v.is_empty()) {
            Some(v) => v.parse::<Revision>().map_err(|_| {
                crate::client::invalid(
                    &ResourceId::new(kind, namespace.unwrap_or_default(), ""),
                    "resourceVersion",
                    &format!("{v:?} is not a datastore revision"),
                )
            })?,
            None => self.backend().revision().await.map_err(datastore)?,
        };
        let stream = self
            .backend()
            .watch(&keys::resource_prefix(kind, namespace), after)
            .await
            .map_err(datastore)?;
        Ok(stream.filter_map(move |item| std::future::ready(convert(kind, item))))
    }
}

fn convert(kind: Kind, item: Result<Event, calico_datastore::Error>) -> Option<WatchEvent> {
    let event = match item {
        Ok(event) => event,
        Err(calico_datastore::Error::Compacted { compacted, .. }) => {
            return Some(WatchEvent::Resync { compacted });
        }
        Err(source) => {
            return Some(WatchEvent::Error(Error::DatastoreList {
                kind,
                source: Box::new(source),
            }));
        }
    };
    // Keys under the prefix that are not resources of this kind (a
    // deeper path) are not ours to report.
    let key = keys::parse_resource_key(event.key())
        .ok()
        .filter(|k| k.kind == kind)?;
    let previous = |prev: Option<calico_datastore::KeyValue>| {
        prev.and_then(|kv| decode(&key, &kv).ok()).map(Box::new)
    };
    Some(match event {
        Event::Put { kv, prev } => match decode(&key, &kv) {
            Ok(resource) if kv.create_revision == kv.mod_revision => WatchEvent::Added(resource),
            Ok(resource) => WatchEvent::Modified {
                resource,
                previous: previous(prev),
            },
            Err(e) => WatchEvent::Error(e),
        },
        Event::Delete {
            mod_revision, prev, ..
        } => WatchEvent::Deleted {
            id: ResourceId::new(kind, key.namespace.clone(), key.name.clone()),
            revision: mod_revision,
            previous: previous(prev),
        },
    })
}
