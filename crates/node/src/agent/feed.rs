//! The datastore feeds: child tasks that list a prefix, then watch it from
//! the listing's revision, and send what they see to the event loop as
//! decoded items. When the watch's history is gone (compaction) or the
//! datastore fails, the task lists again and sends the whole listing,
//! from which the loop works out what was deleted in between (what Calico
//! calls a resync).
//!
//! Values are decoded here, off the loop; a value that cannot be decoded
//! is passed on as [`Item::Unreadable`] with its error, so the loop logs
//! it with its key and keeps the previous version in force.

use std::time::Duration;

use calico_datastore::{Backend, Error as DatastoreError, Event, KeyValue};
use calico_model::ipam::{AllocationBlock, BlockAffinity, BlockAffinityKey, BlockAffinityState};
use calico_model::keys::{self, RESOURCE_ROOT};
use calico_model::kind::Kind;
use calico_model::resource::AnyResource;
use ipnet::{IpNet, Ipv4Net};
use tracing::{info, warn};

/// How long to wait before listing again after the datastore failed; the
/// wait doubles while it keeps failing, up to [`MAX_RETRY`].
const RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Which feed an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feed {
    /// Calico resources the agent uses.
    Resources,
    /// This node's IPAM block affinities.
    Affinities,
    /// Every IPv4 IPAM block, for the node each is affine to (cross-node
    /// routes).
    Blocks,
}

/// A decoded value.
#[derive(Debug, Clone)]
pub enum Item {
    Resource(Box<AnyResource>),
    /// A block affinity of this node; `confirmed` when the block is this
    /// node's (not pending, not being deleted).
    Affinity {
        block: IpNet,
        confirmed: bool,
    },
    /// An IPv4 IPAM block and the node it is affine to (`None` when it
    /// has no host affinity or is being deleted).
    Block {
        cidr: Ipv4Net,
        node: Option<String>,
    },
    /// The value could not be decoded.
    Unreadable(String),
}

/// What a feed reports.
#[derive(Debug, Clone)]
pub enum FeedEvent {
    /// Listing (again) from scratch; the previous state is being replaced.
    Resyncing,
    /// Every relevant key and its value, as of one revision.
    Listing(Vec<(String, Item)>),
    Put(String, Item),
    Delete(String),
    /// The datastore failed; the feed retries.
    Failed(String),
}

/// The kinds the agent reads.
pub fn is_relevant(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Tier
            | Kind::NetworkPolicy
            | Kind::GlobalNetworkPolicy
            | Kind::KubernetesNetworkPolicy
            | Kind::Profile
            | Kind::NetworkSet
            | Kind::GlobalNetworkSet
            | Kind::HostEndpoint
            | Kind::WorkloadEndpoint
            | Kind::FelixConfiguration
            | Kind::Node
            | Kind::BgpConfiguration
            | Kind::BgpPeer
            | Kind::IpPool
            | Kind::CalicoNodeStatus
    )
}

impl Feed {
    /// Every feed; the agent is in sync once each has listed.
    pub const ALL: [Feed; 3] = [Feed::Resources, Feed::Affinities, Feed::Blocks];

    /// The key prefix this feed watches for `node`.
    pub fn prefix(self, node: &str) -> String {
        match self {
            Feed::Resources => RESOURCE_ROOT.to_owned(),
            Feed::Affinities => calico_model::ipam::block_affinity_prefix(
                calico_model::ipam::AffinityType::Host,
                Some(node),
                None,
            ),
            Feed::Blocks => calico_model::ipam::block_prefix(Some(4)),
        }
    }

    /// Whether `key` belongs to this feed.
    pub fn owns(self, key: &str, node: &str) -> bool {
        key.starts_with(&self.prefix(node))
    }

    /// The item for a stored value, or `None` for keys the agent ignores.
    pub fn decode(self, kv: &KeyValue) -> Option<Item> {
        match self {
            Feed::Resources => {
                let key = keys::parse_resource_key(&kv.key).ok()?;
                if !is_relevant(key.kind) {
                    return None;
                }
                Some(
                    match keys::from_etcd_value(&key, &kv.value, kv.mod_revision) {
                        Ok(resource) => Item::Resource(Box::new(resource)),
                        Err(e) => Item::Unreadable(e.to_string()),
                    },
                )
            }
            Feed::Affinities => {
                let key = BlockAffinityKey::parse(&kv.key).ok()?;
                Some(match serde_json::from_slice::<BlockAffinity>(&kv.value) {
                    Ok(affinity) => Item::Affinity {
                        block: key.cidr,
                        confirmed: affinity.state == BlockAffinityState::Confirmed
                            && !affinity.deleted,
                    },
                    Err(e) => Item::Unreadable(format!("block affinity: {e}")),
                })
            }
            Feed::Blocks => {
                calico_model::ipam::parse_block_key(&kv.key).ok()?;
                Some(match serde_json::from_slice::<AllocationBlock>(&kv.value) {
                    Ok(block) => match block.cidr {
                        IpNet::V4(cidr) => Item::Block {
                            cidr: cidr.trunc(),
                            node: (!block.deleted)
                                .then(|| block.host().map(str::to_owned))
                                .flatten(),
                        },
                        IpNet::V6(_) => return None,
                    },
                    Err(e) => Item::Unreadable(format!("IPAM block: {e}")),
                })
            }
        }
    }
}

/// Runs one feed until `emit` reports that nobody listens any more.
pub async fn run<B: Backend>(
    backend: B,
    feed: Feed,
    node: String,
    emit: impl Fn(FeedEvent) -> bool + Send,
) {
    let prefix = feed.prefix(&node);
    let send = |event| emit(event);
    let mut retry = RETRY;
    loop {
        if !send(FeedEvent::Resyncing) {
            return;
        }
        let listing = match backend.list(&prefix).await {
            Ok(listing) => listing,
            Err(e) => {
                let message = calico_datastore::display_chain(&e);
                warn!(?feed, error = %message, "listing the datastore failed; retrying");
                if !send(FeedEvent::Failed(message)) {
                    return;
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
                continue;
            }
        };
        retry = RETRY;
        let items = listing
            .kvs
            .iter()
            .filter_map(|kv| Some((kv.key.clone(), feed.decode(kv)?)))
            .collect();
        if !send(FeedEvent::Listing(items)) {
            return;
        }
        let mut stream = match backend.watch(&prefix, listing.revision).await {
            Ok(stream) => stream,
            Err(e) => {
                let message = calico_datastore::display_chain(&e);
                warn!(?feed, error = %message, "watching the datastore failed; listing again");
                if !send(FeedEvent::Failed(message)) {
                    return;
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
                continue;
            }
        };
        while let Some(event) = stream.recv().await {
            let event = match event {
                Ok(Event::Put { kv, .. }) => match feed.decode(&kv) {
                    Some(item) => FeedEvent::Put(kv.key, item),
                    None => continue,
                },
                Ok(Event::Delete { key, .. }) => FeedEvent::Delete(key),
                Err(DatastoreError::Compacted { compacted, .. }) => {
                    info!(?feed, compacted, "watch history compacted; resyncing");
                    break;
                }
                Err(e) => {
                    let message = calico_datastore::display_chain(&e);
                    warn!(?feed, error = %message, "the datastore watch failed; resyncing");
                    if !send(FeedEvent::Failed(message)) {
                        return;
                    }
                    tokio::time::sleep(RETRY).await;
                    break;
                }
            };
            if !send(event) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            create_revision: 2,
            mod_revision: 3,
        }
    }

    #[test]
    fn decodes_relevant_kinds_and_flags_garbage() {
        let root = RESOURCE_ROOT;
        let tier = kv(
            &format!("{root}tiers/sec"),
            r#"{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"sec"},"spec":{"order":10}}"#,
        );
        assert!(matches!(
            Feed::Resources.decode(&tier),
            Some(Item::Resource(r)) if r.metadata().name == "sec"
        ));
        let garbage = kv(&format!("{root}networkpolicies/ns/p"), "{not json");
        assert!(matches!(
            Feed::Resources.decode(&garbage),
            Some(Item::Unreadable(_))
        ));
        let ipam_config = kv(&format!("{root}ipamconfigurations/default"), "{}");
        assert!(Feed::Resources.decode(&ipam_config).is_none());
        assert!(Feed::Resources.decode(&kv("/calico/other", "{}")).is_none());
    }

    #[test]
    fn affinities_are_confirmed_blocks() {
        let prefix = Feed::Affinities.prefix("node1");
        assert_eq!(prefix, "/calico/ipam/v2/host/node1/");
        let key = format!("{prefix}ipv4/block/10.65.0.0-26");
        assert!(Feed::Affinities.owns(&key, "node1"));
        assert!(!Feed::Affinities.owns(&key, "node2"));
        let decode = |value: &str| Feed::Affinities.decode(&kv(&key, value));
        assert!(matches!(
            decode(r#"{"state":"confirmed","deleted":false}"#),
            Some(Item::Affinity { confirmed: true, block }) if block.to_string() == "10.65.0.0/26"
        ));
        assert!(matches!(
            decode(r#"{"state":"pending"}"#),
            Some(Item::Affinity {
                confirmed: false,
                ..
            })
        ));
        assert!(matches!(decode("x"), Some(Item::Unreadable(_))));
    }

    #[test]
    fn blocks_name_their_node_until_deleted() {
        let key = "/calico/ipam/v2/assignment/ipv4/block/10.65.0.64-26";
        assert!(Feed::Blocks.owns(key, "any"));
        let decode = |value: &str| Feed::Blocks.decode(&kv(key, value));
        let block = |affinity: &str, deleted: bool| {
            format!(
                r#"{{"cidr":"10.65.0.64/26","affinity":{affinity},"allocations":[null],"unallocated":[0],"attributes":[],"deleted":{deleted}}}"#
            )
        };
        assert!(matches!(
            decode(&block(r#""host:node2""#, false)),
            Some(Item::Block { cidr, node: Some(n) }) if cidr.to_string() == "10.65.0.64/26" && n == "node2"
        ));
        assert!(matches!(
            decode(&block(r#""host:node2""#, true)),
            Some(Item::Block { node: None, .. })
        ));
        assert!(matches!(
            decode(&block("null", false)),
            Some(Item::Block { node: None, .. })
        ));
        assert!(matches!(decode("{"), Some(Item::Unreadable(_))));
    }
}
