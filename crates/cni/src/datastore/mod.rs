//! The plugin's services over Calico's datastore: WorkloadEndpoints and
//! profiles through the typed client ([`DatastoreStore`]), addresses
//! through the block allocator ([`BlockAllocator`]). Both work with either
//! engine (the embedded file or etcd).

mod allocator;

use calico_client::{Client, Error as ClientError};
use calico_datastore::Backend;
use calico_model::kind::Kind;
use calico_model::{ClusterInformation, Profile, WorkloadEndpoint};
use futures::future::BoxFuture;

use crate::endpoint::{Deleted, EndpointStore, StoreError};

pub use allocator::BlockAllocator;

/// WorkloadEndpoints, profiles and the readiness flag in Calico's
/// datastore, keyed and encoded as Calico does.
#[derive(Debug)]
pub struct DatastoreStore<B> {
    client: Client<B>,
}

impl<B: Backend> DatastoreStore<B> {
    pub fn new(client: Client<B>) -> Self {
        DatastoreStore { client }
    }

    pub fn client(&self) -> &Client<B> {
        &self.client
    }
}

/// Sorts the client's errors into what the plugin acts on.
pub(crate) fn store_error(kind: &'static str, name: &str, error: ClientError) -> StoreError {
    match error {
        ClientError::Conflict { .. } => StoreError::Conflict {
            kind,
            name: name.to_string(),
        },
        ClientError::Datastore { ref source, .. } if source.is_transient() => {
            StoreError::Unavailable(calico_datastore::display_chain(&error))
        }
        ClientError::DatastoreList { ref source, .. } if source.is_transient() => {
            StoreError::Unavailable(calico_datastore::display_chain(&error))
        }
        ClientError::Invalid { .. }
        | ClientError::NotSupported { .. }
        | ClientError::AlreadyExists { .. } => StoreError::Rejected {
            kind,
            name: name.to_string(),
            reason: calico_datastore::display_chain(&error),
        },
        other => StoreError::Other(Box::new(other)),
    }
}

impl<B: Backend + Clone> EndpointStore for DatastoreStore<B> {
    fn datastore_ready(&self) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            match self
                .client
                .get_typed::<ClusterInformation>("", calico_client::CLUSTER_INFO_NAME)
                .await
            {
                // Calico treats a missing flag as not ready.
                Ok(info) => Ok(info.spec.datastore_ready.unwrap_or(false)),
                Err(ClientError::NotFound { .. }) => Err(StoreError::Unavailable(
                    "the datastore has no ClusterInformation \"default\": is calico-node running?"
                        .into(),
                )),
                Err(e) => Err(store_error("ClusterInformation", "default", e)),
            }
        })
    }

    fn get<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<WorkloadEndpoint>, StoreError>> {
        Box::pin(async move {
            match self
                .client
                .get_typed::<WorkloadEndpoint>(namespace, name)
                .await
            {
                Ok(endpoint) => Ok(Some(endpoint)),
                Err(ClientError::NotFound { .. }) => Ok(None),
                Err(e) => Err(store_error("WorkloadEndpoint", name, e)),
            }
        })
    }

    fn apply<'a>(
        &'a self,
        endpoint: &'a WorkloadEndpoint,
    ) -> BoxFuture<'a, Result<WorkloadEndpoint, StoreError>> {
        Box::pin(async move {
            let name = endpoint.metadata.name.clone();
            let written = if endpoint.metadata.resource_version.is_empty() {
                self.client.create_typed(endpoint.clone()).await
            } else {
                self.client.update_typed(endpoint.clone()).await
            };
            written.map_err(|e| store_error("WorkloadEndpoint", &name, e))
        })
    }

    fn delete<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        expected_revision: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Deleted, StoreError>> {
        Box::pin(async move {
            match self
                .client
                .delete(Kind::WorkloadEndpoint, namespace, name, expected_revision)
                .await
            {
                Ok(_) => Ok(Deleted::Deleted),
                Err(ClientError::NotFound { .. }) => Ok(Deleted::NotFound),
                Err(e) => Err(store_error("WorkloadEndpoint", name, e)),
            }
        })
    }

    fn ensure_profile<'a>(&'a self, profile: &'a Profile) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let name = &profile.metadata.name;
            match self.client.get_typed::<Profile>("", name).await {
                Ok(_) => return Ok(()),
                Err(ClientError::NotFound { .. }) => {}
                Err(e) => return Err(store_error("Profile", name, e)),
            }
            match self.client.create_typed(profile.clone()).await {
                // Another plugin created it first: just as good.
                Ok(_) | Err(ClientError::AlreadyExists { .. }) => Ok(()),
                Err(e) => Err(store_error("Profile", name, e)),
            }
        })
    }
}
