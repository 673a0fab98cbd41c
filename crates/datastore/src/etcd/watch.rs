//! Watches on etcd: one gRPC watch stream per watch, its responses
//! flattened into [`Event`]s, compaction reported as [`Error::Compacted`].

use std::collections::VecDeque;

use etcd_client::{EventType, WatchOptions};

use super::{EtcdBackend, convert_kv};
use crate::error::Message;
use crate::{Error, Event, KeyValue, Revision, WatchStream};

struct State {
    stream: etcd_client::WatchStream,
    pending: VecDeque<Event>,
    target: String,
    prefix: String,
    after: Revision,
    done: bool,
}

pub(super) async fn watch(
    backend: &EtcdBackend,
    prefix: &str,
    after: Revision,
) -> Result<WatchStream, Error> {
    let mut options = WatchOptions::new()
        .with_start_revision(after + 1)
        .with_prev_key();
    let key = if prefix.is_empty() {
        options = options.with_all_keys();
        vec![0]
    } else {
        options = options.with_prefix();
        prefix.as_bytes().to_vec()
    };
    let mut client = backend.client.watch_client();
    let stream = backend
        .call("watch", prefix, client.watch(key, Some(options)))
        .await?;
    let state = State {
        stream,
        pending: VecDeque::new(),
        target: backend.target.clone(),
        prefix: prefix.to_owned(),
        after,
        done: false,
    };
    Ok(WatchStream::new(futures::stream::unfold(state, next)))
}

async fn next(mut state: State) -> Option<(Result<Event, Error>, State)> {
    loop {
        if let Some(event) = state.pending.pop_front() {
            state.after = event.revision();
            return Some((Ok(event), state));
        }
        if state.done {
            return None;
        }
        let failure = match state.stream.message().await {
            Ok(Some(response)) if response.compact_revision() > 0 => Error::Compacted {
                requested: state.after + 1,
                compacted: response.compact_revision(),
            },
            Ok(Some(response)) if response.canceled() => Error::Operation {
                target: state.target.clone(),
                operation: "watch",
                key: state.prefix.clone(),
                source: Box::new(Message(format!(
                    "etcd cancelled the watch: {}",
                    response.cancel_reason()
                ))),
            },
            Ok(Some(response)) => {
                for event in response.events() {
                    match convert_event(event) {
                        Ok(Some(event)) => state.pending.push_back(event),
                        Ok(None) => {}
                        Err(reason) => {
                            state.pending.clear();
                            state.done = true;
                            let error = Error::Operation {
                                target: state.target.clone(),
                                operation: "watch",
                                key: state.prefix.clone(),
                                source: Box::new(Message(reason)),
                            };
                            return Some((Err(error), state));
                        }
                    }
                }
                continue;
            }
            Ok(None) => Error::Unavailable {
                target: state.target.clone(),
                source: Box::new(Message(format!(
                    "the watch of {} was closed by the server",
                    state.prefix
                ))),
            },
            Err(e) => Error::Unavailable {
                target: state.target.clone(),
                source: Box::new(e),
            },
        };
        state.done = true;
        return Some((Err(failure), state));
    }
}

fn convert_event(event: &etcd_client::Event) -> Result<Option<Event>, String> {
    let Some(kv) = event.kv() else {
        return Ok(None);
    };
    let prev = event.prev_kv().map(convert_kv).transpose()?;
    Ok(Some(match event.event_type() {
        EventType::Put => Event::Put {
            kv: convert_kv(kv)?,
            prev,
        },
        EventType::Delete => {
            let KeyValue {
                key, mod_revision, ..
            } = convert_kv(kv)?;
            Event::Delete {
                key,
                mod_revision,
                prev,
            }
        }
    }))
}
