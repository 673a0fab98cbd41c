//! [`Client`]: create, update, apply, get, list, delete and watch of any
//! kind, with what Calico's clientv3 (and calicoctl's resource manager)
//! does around each call.

use std::sync::Arc;

use serde_json::{Map, Value};

use calico_datastore::{Backend, KeyValue};
use calico_model::kind::Kind;
use calico_model::meta::ObjectMeta;
use calico_model::resource::{AnyResource, Resource};
use calico_selector::Selector;

use crate::error::{Error, ResourceId};
use crate::stamp::{Stamper, SystemStamper};
use crate::{checks, defaults, kubernetes};
use calico_model::keys::{self, ResourceKey};

/// How many times an update without a `resourceVersion` re-reads and
/// retries after losing a race (calicoctl's count).
const UPDATE_ATTEMPTS: usize = 5;

/// Typed access to every Calico resource kind over a key/value
/// [`Backend`].
///
/// Values are stored as Calico's etcdv3 backend stores them (the
/// resource's JSON with `kind` and `apiVersion`, without
/// `resourceVersion`); on read, `metadata.resourceVersion` is the key's
/// mod revision.
#[derive(Debug, Clone)]
pub struct Client<B> {
    backend: B,
    stamper: Arc<dyn Stamper>,
}

/// Every resource of a kind as of one revision.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceList {
    pub kind: Kind,
    pub items: Vec<AnyResource>,
    /// The datastore revision of the listing: watch from here to see every
    /// later change.
    pub resource_version: String,
}

impl ResourceList {
    /// The `<Kind>List` document Calico prints:
    /// `{kind, apiVersion, metadata: {resourceVersion}, items}`.
    pub fn to_json_value(&self) -> Value {
        let mut out = Map::new();
        out.insert("kind".into(), Value::String(self.kind.list_kind()));
        out.insert(
            "apiVersion".into(),
            Value::String(self.kind.api_version().into()),
        );
        let mut meta = Map::new();
        meta.insert(
            "resourceVersion".into(),
            Value::String(self.resource_version.clone()),
        );
        out.insert("metadata".into(), Value::Object(meta));
        out.insert(
            "items".into(),
            Value::Array(self.items.iter().map(AnyResource::to_json_value).collect()),
        );
        Value::Object(out)
    }
}

/// What [`Client::apply`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    Created(AnyResource),
    Updated(AnyResource),
}

impl Applied {
    pub fn resource(&self) -> &AnyResource {
        match self {
            Applied::Created(r) | Applied::Updated(r) => r,
        }
    }

    pub fn into_resource(self) -> AnyResource {
        match self {
            Applied::Created(r) | Applied::Updated(r) => r,
        }
    }
}

pub(crate) fn id_of(resource: &AnyResource) -> ResourceId {
    let m = resource.metadata();
    ResourceId::new(resource.kind(), m.namespace.clone(), m.name.clone())
}

impl<B: Backend> Client<B> {
    /// A client stamping new resources with random UUIDs and the clock.
    pub fn new(backend: B) -> Client<B> {
        Client::with_stamper(backend, Arc::new(SystemStamper))
    }

    /// A client taking uids and creation times from `stamper`.
    pub fn with_stamper(backend: B, stamper: Arc<dyn Stamper>) -> Client<B> {
        Client { backend, stamper }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// One resource. Kubernetes NetworkPolicies are read in the form
    /// kube-controllers stores them (`knp.default.<name>` NetworkPolicy).
    pub async fn get(&self, kind: Kind, namespace: &str, name: &str) -> Result<AnyResource, Error> {
        let (kind, name) = kubernetes::stored_identity(kind, name);
        let id = ResourceId::new(kind, scope(kind, namespace), name);
        let kv = self
            .backend
            .get(&keys::resource_key(kind, &id.namespace, &id.name))
            .await
            .map_err(|e| datastore_error(&id, None, e))?;
        match kv {
            Some(kv) => decode(&stored_key(&id), &kv),
            None => Err(Error::NotFound { id }),
        }
    }

    /// Every resource of `kind`, in one namespace or (with `None` or an
    /// empty namespace, or for cluster-wide kinds) all, keeping those whose
    /// labels match `selector`. Sorted by namespace, then name.
    pub async fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: Option<&Selector>,
    ) -> Result<ResourceList, Error> {
        let (stored_kind, name_prefix) = kubernetes::stored_listing(kind);
        let listing = self
            .backend
            .list(&keys::resource_prefix(stored_kind, namespace))
            .await
            .map_err(|source| Error::DatastoreList {
                kind,
                source: Box::new(source),
            })?;
        let mut items = Vec::with_capacity(listing.kvs.len());
        for kv in &listing.kvs {
            let Ok(key) = keys::parse_resource_key(&kv.key) else {
                continue;
            };
            if key.kind != stored_kind || !key.name.starts_with(name_prefix) {
                continue;
            }
            let resource = decode(&key, kv)?;
            if selector.is_none_or(|s| s.evaluate(&resource.metadata().labels)) {
                items.push(resource);
            }
        }
        Ok(ResourceList {
            kind: stored_kind,
            items,
            resource_version: listing.revision.to_string(),
        })
    }

    /// Creates a resource, as Calico's client does: checks it, fills in
    /// defaults, a `uid` and a `creationTimestamp` (unless given), and
    /// stores it if the key is free. A Kubernetes NetworkPolicy is stored
    /// as the Calico NetworkPolicy kube-controllers would write.
    ///
    /// A `resourceVersion` must not be set.
    pub async fn create(&self, resource: AnyResource) -> Result<AnyResource, Error> {
        let mut resource = kubernetes::to_stored(resource)?;
        // Defaults may name the resource (a workload endpoint's name comes
        // from its node, pod and interface).
        defaults::apply(&mut resource);
        let id = id_of(&resource);
        if !resource.metadata().resource_version.is_empty() {
            return Err(invalid(
                &id,
                "metadata.resourceVersion",
                "field must not be set for a Create request",
            ));
        }
        checks::before_create(self, &resource).await?;
        resource.validate().map_err(|errors| Error::Invalid {
            id: id.clone(),
            errors,
        })?;
        let meta = resource.metadata_mut();
        if meta.creation_timestamp.is_none() {
            meta.creation_timestamp = Some(self.stamper.now());
        }
        if meta.uid.is_empty() {
            meta.uid = self.stamper.uid();
        }
        let key = keys::resource_key(id.kind, &id.namespace, &id.name);
        let kv = self
            .backend
            .create(&key, encode(&resource).as_bytes())
            .await
            .map_err(|e| datastore_error(&id, None, e))?;
        set_resource_version(&mut resource, &kv);
        defaults::on_read(&mut resource);
        Ok(resource)
    }

    /// Replaces a resource's spec, labels and annotations; the rest of the
    /// stored metadata (uid, creation time) is kept.
    ///
    /// With `metadata.resourceVersion` set, only if the stored resource is
    /// still at that version ([`Error::Conflict`] otherwise). Without it,
    /// the current version is read and the write retried if another writer
    /// gets in between.
    pub async fn update(&self, resource: AnyResource) -> Result<AnyResource, Error> {
        let mut resource = kubernetes::to_stored(resource)?;
        defaults::apply(&mut resource);
        let id = id_of(&resource);
        let given = resource.metadata().resource_version.clone();
        if !given.is_empty() {
            let current = self.get(id.kind, &id.namespace, &id.name).await?;
            let actual = current.metadata().resource_version.clone();
            if actual != given {
                return Err(Error::Conflict {
                    id,
                    expected: Some(given),
                    actual: Some(actual),
                });
            }
            return self.write_update(&current, resource).await;
        }
        let mut last = None;
        for _ in 0..UPDATE_ATTEMPTS {
            let current = self.get(id.kind, &id.namespace, &id.name).await?;
            match self.write_update(&current, resource.clone()).await {
                Err(e @ Error::Conflict { .. }) => {
                    tracing::info!(resource = %id, "update conflict, retrying");
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or(Error::Conflict {
            id,
            expected: None,
            actual: None,
        }))
    }

    /// Stores `update` over `current` (as read, with its version), keeping
    /// `current`'s metadata except labels and annotations.
    async fn write_update(
        &self,
        current: &AnyResource,
        mut update: AnyResource,
    ) -> Result<AnyResource, Error> {
        let id = id_of(current);
        let stored = current.metadata();
        let wanted = update.metadata();
        let meta = ObjectMeta {
            labels: wanted.labels.clone(),
            annotations: wanted.annotations.clone(),
            ..stored.clone()
        };
        *update.metadata_mut() = meta;
        defaults::apply(&mut update);
        checks::before_update(self, current, &update).await?;
        update.validate().map_err(|errors| Error::Invalid {
            id: id.clone(),
            errors,
        })?;
        let expected = parse_revision(&id, &stored.resource_version)?;
        let kv = self
            .backend
            .update(
                &keys::resource_key(id.kind, &id.namespace, &id.name),
                encode(&update).as_bytes(),
                expected,
            )
            .await
            .map_err(|e| datastore_error(&id, Some(&stored.resource_version), e))?;
        set_resource_version(&mut update, &kv);
        defaults::on_read(&mut update);
        Ok(update)
    }

    /// Creates the resource, or updates it if it exists (calicoctl's
    /// apply).
    pub async fn apply(&self, resource: AnyResource) -> Result<Applied, Error> {
        let mut for_create = resource.clone();
        for_create.metadata_mut().resource_version.clear();
        match self.create(for_create).await {
            Ok(created) => Ok(Applied::Created(created)),
            Err(Error::AlreadyExists { .. }) => self.update(resource).await.map(Applied::Updated),
            Err(e) => Err(e),
        }
    }

    /// Where this client's uids and creation times come from.
    pub fn stamper(&self) -> &dyn Stamper {
        self.stamper.as_ref()
    }

    /// [`Client::get`] for one kind's struct.
    pub async fn get_typed<R: Resource>(&self, namespace: &str, name: &str) -> Result<R, Error> {
        typed(self.get(R::KIND, namespace, name).await?)
    }

    /// [`Client::list`] for one kind's struct.
    pub async fn list_typed<R: Resource>(
        &self,
        namespace: Option<&str>,
        selector: Option<&Selector>,
    ) -> Result<Vec<R>, Error> {
        self.list(R::KIND, namespace, selector)
            .await?
            .items
            .into_iter()
            .map(typed)
            .collect()
    }

    /// [`Client::create`] for one kind's struct.
    pub async fn create_typed<R: Resource>(&self, resource: R) -> Result<R, Error> {
        typed(self.create(resource.into()).await?)
    }

    /// [`Client::update`] for one kind's struct.
    pub async fn update_typed<R: Resource>(&self, resource: R) -> Result<R, Error> {
        typed(self.update(resource.into()).await?)
    }
}

impl<B: Backend + Clone> Client<B> {
    /// Deletes a resource and returns its last stored value; with a
    /// `resource_version`, only if it is still at that version.
    pub async fn delete(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        resource_version: Option<&str>,
    ) -> Result<AnyResource, Error> {
        let (kind, name) = kubernetes::stored_identity(kind, name);
        let id = ResourceId::new(kind, scope(kind, namespace), name);
        let mut expected = match resource_version.filter(|v| !v.is_empty()) {
            Some(v) => Some(parse_revision(&id, v)?),
            None => None,
        };
        if let Some(new_expected) = checks::before_delete(self, &id, expected).await? {
            expected = Some(new_expected);
        }
        let kv = self
            .backend
            .delete(&keys::resource_key(kind, &id.namespace, &id.name), expected)
            .await
            .map_err(|e| datastore_error(&id, resource_version, e))?;
        decode(&stored_key(&id), &kv)
    }
}

/// What [`Client::create`] would store for `resource` (converted if it is a
/// Kubernetes NetworkPolicy, with defaults filled in), checked against
/// Calico's rules for a single resource, without touching the datastore.
/// Checks that need the datastore (does the tier exist, do pools overlap)
/// are not made.
pub fn validate(resource: AnyResource) -> Result<AnyResource, Error> {
    let mut resource = kubernetes::to_stored(resource)?;
    defaults::apply(&mut resource);
    resource.validate().map_err(|errors| Error::Invalid {
        id: id_of(&resource),
        errors,
    })?;
    Ok(resource)
}

/// The namespace part of an identity: empty for cluster-wide kinds.
fn scope(kind: Kind, namespace: &str) -> String {
    if kind.namespaced() {
        namespace.to_owned()
    } else {
        String::new()
    }
}

/// Converts an [`AnyResource`] of `R`'s kind into `R`.
fn typed<R: Resource>(resource: AnyResource) -> Result<R, Error> {
    let id = id_of(&resource);
    let mut body = resource.to_json_value();
    if let Value::Object(map) = &mut body {
        map.remove("kind");
        map.remove("apiVersion");
    }
    serde_json::from_value(body).map_err(|e| Error::Decode {
        key: keys::resource_key(id.kind, &id.namespace, &id.name),
        kind: R::KIND,
        source: Box::new(calico_model::resource::ResourceError::Field {
            path: String::new(),
            message: e.to_string(),
        }),
    })
}

pub(crate) fn invalid(id: &ResourceId, path: &str, message: &str) -> Error {
    Error::Invalid {
        id: id.clone(),
        errors: calico_model::validate::ValidationErrors(vec![
            calico_model::validate::ValidationError {
                path: path.to_owned(),
                message: message.to_owned(),
            },
        ]),
    }
}

fn parse_revision(id: &ResourceId, version: &str) -> Result<i64, Error> {
    version
        .parse::<i64>()
        .ok()
        .filter(|r| *r > 0)
        .ok_or_else(|| {
            invalid(
                id,
                "metadata.resourceVersion",
                &format!("{version:?} is not a datastore revision"),
            )
        })
}

fn datastore_error(id: &ResourceId, expected: Option<&str>, e: calico_datastore::Error) -> Error {
    use calico_datastore::Error as D;
    match e {
        D::NotFound { .. } => Error::NotFound { id: id.clone() },
        D::AlreadyExists { .. } => Error::AlreadyExists { id: id.clone() },
        D::Conflict { actual, .. } => Error::Conflict {
            id: id.clone(),
            expected: expected.map(str::to_owned),
            actual: Some(actual.to_string()),
        },
        source => Error::Datastore {
            id: id.clone(),
            source: Box::new(source),
        },
    }
}

/// The bytes Calico stores for a resource.
pub(crate) fn encode(resource: &AnyResource) -> String {
    keys::to_etcd_value(resource)
}

fn set_resource_version(resource: &mut AnyResource, kv: &KeyValue) {
    let meta = resource.metadata_mut();
    meta.resource_version = kv.mod_revision.to_string();
    meta.self_link.clear();
}

pub(crate) fn stored_key(id: &ResourceId) -> ResourceKey {
    ResourceKey {
        kind: id.kind,
        namespace: id.namespace.clone(),
        name: id.name.clone(),
    }
}

/// A stored key/value as the resource a reader gets.
pub(crate) fn decode(key: &ResourceKey, kv: &KeyValue) -> Result<AnyResource, Error> {
    let mut resource =
        keys::from_etcd_value(key, &kv.value, kv.mod_revision).map_err(|source| Error::Decode {
            key: kv.key.clone(),
            kind: key.kind,
            source: Box::new(source),
        })?;
    defaults::on_read(&mut resource);
    Ok(resource)
}
