//! The agent's datastore handlers: listings (initial and after a resync),
//! puts and deletes, turned into policy engine updates, configuration
//! layers and affine blocks.

use std::collections::{HashMap, HashSet};

use calico_model::resource::AnyResource;
use calico_policy::Update;
use tracing::{debug, info, warn};

use super::bgp::ClusterResources;
use super::feed::{Feed, FeedEvent, Item};
use super::{Agent, Known, resources};
use crate::metrics;

impl Agent {
    pub(super) fn on_feed(&mut self, feed: Feed, event: FeedEvent) {
        match event {
            FeedEvent::Resyncing => {
                if self.listed.contains(&feed) {
                    self.metrics.resyncs_started.inc();
                }
                if !self.in_sync {
                    self.metrics.resync_state.set(metrics::RESYNC_IN_PROGRESS);
                }
            }
            FeedEvent::Failed(message) => {
                self.metrics
                    .resync_state
                    .set(metrics::RESYNC_WAIT_FOR_DATASTORE);
                self.datastore_error = Some(message);
            }
            FeedEvent::Listing(items) => self.on_listing(feed, items),
            FeedEvent::Put(key, item) => {
                self.datastore_error = None;
                self.on_put(key, item);
            }
            FeedEvent::Delete(key) => self.on_delete(&key),
        }
    }

    /// A complete listing: whatever is known under the feed's prefix and
    /// absent from it was deleted meanwhile.
    fn on_listing(&mut self, feed: Feed, items: Vec<(String, Item)>) {
        self.datastore_error = None;
        let listed: HashSet<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
        let gone: Vec<String> = self
            .known
            .keys()
            .filter(|k| feed.owns(k, &self.node) && !listed.contains(k.as_str()))
            .cloned()
            .collect();
        for key in gone {
            self.on_delete(&key);
        }
        // Engine updates go in as one batch: one settlement for the lot.
        let mut batch = Vec::new();
        let mut keys_by_resource: HashMap<String, String> = HashMap::new();
        for (key, item) in items {
            match item {
                Item::Resource(resource) if self.engine_resource(&resource) => {
                    let Some((update, delete)) = resources::to_update(*resource) else {
                        continue;
                    };
                    if let Some(Known::Engine(old)) = self.known.get(&key) {
                        if *old != delete {
                            batch.push(old.clone());
                        }
                    }
                    keys_by_resource.insert(update.describe(), key.clone());
                    self.known.insert(key, Known::Engine(delete));
                    batch.push(update);
                }
                other => self.on_put(key, other),
            }
        }
        self.metrics
            .calc_graph_updates_processed
            .inc_by(batch.len() as u64);
        let (changes, errors) = self.engine.apply_all(batch);
        for e in errors {
            let resource = match &e {
                calico_policy::EngineError::Invalid { resource, .. }
                | calico_policy::EngineError::Conversion { resource, .. } => resource.clone(),
            };
            let key = keys_by_resource.get(&resource).cloned().unwrap_or_default();
            self.reject(&key, &calico_datastore::display_chain(&e));
        }
        self.note_changes(&changes);
        if self.listed.insert(feed) {
            info!(?feed, "initial listing received");
        }
        if !self.in_sync && self.listed.len() == Feed::ALL.len() {
            info!("in sync with the datastore");
            self.in_sync = true;
            self.metrics.resync_state.set(metrics::RESYNC_IN_SYNC);
            self.dirty_rules = true;
            self.dirty_routes = true;
            self.overlay.dirty = true;
        }
        if self.in_sync {
            self.metrics.resync_state.set(metrics::RESYNC_IN_SYNC);
        }
    }

    /// Whether the engine takes this resource (not configuration).
    fn engine_resource(&self, resource: &AnyResource) -> bool {
        !matches!(
            resource,
            AnyResource::FelixConfiguration(_) | AnyResource::CalicoNodeStatus(_)
        ) && !ClusterResources::takes(resource)
    }

    fn reject(&mut self, key: &str, error: &str) {
        self.metrics.rejected_resources.inc();
        warn!(
            key,
            error, "skipping a resource the agent cannot use; any previous version stays in force"
        );
    }

    fn on_put(&mut self, key: String, item: Item) {
        match item {
            Item::Unreadable(error) => self.reject(&key, &error),
            Item::Affinity { block, confirmed } => {
                if let Some(Known::Affinity(old)) = self.known.get(&key) {
                    self.affine_blocks.remove(old);
                }
                if confirmed {
                    self.affine_blocks.insert(block);
                    self.known.insert(key, Known::Affinity(block));
                } else {
                    self.known.insert(key, Known::Ignored);
                }
                self.dirty_routes = true;
                self.bgp.dirty = true;
            }
            Item::Block { cidr, node } => {
                self.overlay.put_block(key.clone(), cidr, node);
                self.known.insert(key, Known::Block);
            }
            Item::Resource(resource) => match *resource {
                AnyResource::FelixConfiguration(config) => {
                    let name = config.metadata.name.as_str();
                    if name == "default" {
                        self.layers.set_global(Some(&config.spec));
                        self.overlay.set_felix(true, Some(config.spec.clone()));
                        self.known.insert(key, Known::GlobalConfig);
                        self.config_dirty = true;
                    } else if name == format!("node.{}", self.node) {
                        self.layers.set_per_host(Some(&config.spec));
                        self.overlay.set_felix(false, Some(config.spec.clone()));
                        self.known.insert(key, Known::HostConfig);
                        self.config_dirty = true;
                    } else {
                        self.known.insert(key, Known::Ignored);
                    }
                }
                AnyResource::CalicoNodeStatus(status) => {
                    let known = if self.reports.put(&key, status, std::time::Instant::now()) {
                        Known::NodeStatus
                    } else {
                        Known::Ignored
                    };
                    self.known.insert(key, known);
                }
                resource if ClusterResources::takes(&resource) => {
                    self.cluster.put(&key, resource);
                    self.bgp.dirty = true;
                    self.overlay.dirty = true;
                    self.known.insert(key, Known::Cluster);
                }
                resource => {
                    let Some((update, delete)) = resources::to_update(resource) else {
                        return;
                    };
                    self.metrics.calc_graph_updates_processed.inc();
                    let describe = update.describe();
                    match self.engine.apply(update) {
                        Ok(changes) => {
                            // The key may now name a different engine
                            // object (a renamed policy): remove the old.
                            if let Some(Known::Engine(old)) =
                                self.known.insert(key, Known::Engine(delete.clone()))
                            {
                                if old != delete {
                                    self.apply_to_engine(old);
                                }
                            }
                            self.note_changes(&changes);
                        }
                        Err(e) => {
                            debug!(resource = describe, "refused by the policy engine");
                            self.reject(&key, &calico_datastore::display_chain(&e));
                        }
                    }
                }
            },
        }
    }

    fn on_delete(&mut self, key: &str) {
        match self.known.remove(key) {
            Some(Known::Engine(delete)) => self.apply_to_engine(delete),
            Some(Known::GlobalConfig) => {
                self.layers.set_global(None);
                self.overlay.set_felix(true, None);
                self.config_dirty = true;
            }
            Some(Known::HostConfig) => {
                self.layers.set_per_host(None);
                self.overlay.set_felix(false, None);
                self.config_dirty = true;
            }
            Some(Known::Affinity(block)) => {
                self.affine_blocks.remove(&block);
                self.dirty_routes = true;
                self.bgp.dirty = true;
            }
            Some(Known::Cluster) => {
                self.cluster.remove(key);
                self.bgp.dirty = true;
                self.overlay.dirty = true;
            }
            Some(Known::Block) => {
                self.overlay.remove_block(key);
            }
            Some(Known::NodeStatus) => self.reports.remove(key),
            Some(Known::Ignored) | None => {}
        }
    }

    fn apply_to_engine(&mut self, update: Update) {
        self.metrics.calc_graph_updates_processed.inc();
        match self.engine.apply(update) {
            Ok(changes) => self.note_changes(&changes),
            Err(e) => {
                warn!(error = %calico_datastore::display_chain(&e), "the policy engine refused a delete")
            }
        }
    }

    fn note_changes(&mut self, changes: &calico_policy::Changes) {
        if changes.is_empty() {
            return;
        }
        self.mirror.update(&self.engine, changes);
        self.dirty_rules = true;
        if !changes.endpoints_updated.is_empty() || !changes.endpoints_removed.is_empty() {
            self.dirty_routes = true;
        }
    }
}
