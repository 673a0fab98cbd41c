//! `create`, `apply`, `replace`, `delete` and `validate`: resources from
//! files (or, for delete, kind and names) and calicoctl's reporting of what
//! happened to them.
//!
//! One difference from Calico, on purpose: every resource of a file is
//! read and checked (syntax, namespace, Calico's validation rules) before
//! anything is written, and if any is bad nothing is written at all, unless
//! `--continue-on-error` asks for the valid ones to be written anyway (the
//! command still fails). Calico stops before writing only for syntax
//! errors; a resource that fails validation is reported while the others
//! are still written. Checks that need the datastore (the tier
//! exists, pools do not overlap, the resource exists) still happen per
//! resource as they are written, with Calico's partial-success messages.
//! `validate` lists every invalid resource the same way.

use std::collections::BTreeSet;

use anyhow::{anyhow, bail};

use calico_client::{Client, Error as ClientError};
use calico_datastore::AnyBackend;
use calico_model::kind::Kind;
use calico_model::meta::ObjectMeta;
use calico_model::resource::AnyResource;
use calico_policy::knp::ETCD_NAME_PREFIX;

use super::{error_text, go_list, resolve_kind, scope};
use crate::cli::{DeleteArgs, FileArgs, Global};
use crate::datastore::connect_checked;
use crate::files::{self, Loaded, Location};

/// What to do with each resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create { skip_exists: bool },
    Apply,
    Replace,
    Delete { skip_not_exists: bool },
    Validate,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Create { .. } => "create",
            Action::Apply => "apply",
            Action::Replace => "replace",
            Action::Delete { .. } => "delete",
            Action::Validate => "validate",
        }
    }

    fn past(self) -> &'static str {
        match self {
            Action::Create { .. } => "created",
            Action::Apply => "applied",
            Action::Replace => "replaced",
            Action::Delete { .. } => "deleted",
            Action::Validate => "validated",
        }
    }

    fn writes(self) -> bool {
        matches!(
            self,
            Action::Create { .. } | Action::Apply | Action::Replace
        )
    }
}

/// A resource to act on, and where it was read from.
struct Item {
    location: Option<Location>,
    resource: AnyResource,
}

impl Item {
    fn describe(&self) -> String {
        let m = self.resource.metadata();
        let id = calico_client::ResourceId::new(
            self.resource.kind(),
            m.namespace.clone(),
            m.name.clone(),
        );
        match &self.location {
            Some(l) => format!("{l} ({id})"),
            None => id.to_string(),
        }
    }
}

/// `create|apply|replace|validate -f`.
pub async fn file_command(global: &Global, args: &FileArgs, action: Action) -> anyhow::Result<()> {
    let loaded = files::load(&args.filename, args.recursive, args.skip_empty)
        .map_err(|e| anyhow!("failed to execute command: {e:#}"))?;
    if loaded.is_empty() {
        println!("No resources specified");
        return Ok(());
    }
    let items = place(loaded, args.namespace.as_deref())?;
    let single_kind = single_kind(&items);

    // Check every resource before anything is written.
    let mut problems = Vec::new();
    let mut invalid = BTreeSet::new();
    for (index, item) in items.iter().enumerate() {
        if let Err(e) = calico_client::validate(item.resource.clone()) {
            invalid.insert(index);
            let location = item
                .location
                .as_ref()
                .map_or_else(String::new, Location::to_string);
            // Several errors of one resource are indented under it.
            problems.push(format!(
                "{location}: {}",
                error_text(&e).replace('\n', "\n    ")
            ));
        }
    }
    if action == Action::Validate && problems.is_empty() {
        return report(
            action,
            items.len(),
            items.len(),
            &[],
            single_kind.as_deref(),
        );
    }
    let keep_going = args.continue_on_error && action.writes() && invalid.len() < items.len();
    if !problems.is_empty() && !keep_going {
        let consequence = match action {
            Action::Validate => String::new(),
            _ => format!(", so nothing was {}", action.past()),
        };
        bail!(
            "failed to {} resources: {} of {} resource(s) are invalid{consequence}:\n  {}",
            action.verb(),
            problems.len(),
            items.len(),
            problems.join("\n  ")
        );
    }
    let skipped = problems.len();
    let items: Vec<Item> = items
        .into_iter()
        .enumerate()
        .filter(|(index, _)| !invalid.contains(index))
        .map(|(_, item)| item)
        .collect();

    let client = connect_checked(global).await?;
    if action.writes() {
        // As calicoctl does before any write: the built-in tiers and
        // ClusterInformation; failing that is not the user's problem.
        if let Err(e) = client.ensure_initialized("", "").await {
            tracing::info!(error = %e, "unable to initialize the datastore");
        }
    }
    let written = execute(&client, &items, action, single_kind.as_deref()).await;
    if skipped == 0 {
        return written;
    }
    let invalid_report = anyhow!(
        "{} resource(s) were invalid and not {}:\n  {}",
        skipped,
        action.past(),
        problems.join("\n  ")
    );
    match written {
        Ok(()) => Err(invalid_report),
        Err(e) => Err(e.context(invalid_report)),
    }
}

/// `delete -f FILE` or `delete KIND NAME...`.
pub async fn delete(global: &Global, args: &DeleteArgs) -> anyhow::Result<()> {
    let action = Action::Delete {
        skip_not_exists: args.skip_not_exists,
    };
    let (items, single_kind) = match (&args.filename, &args.kind) {
        (Some(path), _) => {
            let loaded = files::load(path, args.recursive, args.skip_empty)
                .map_err(|e| anyhow!("failed to execute command: {e:#}"))?;
            if loaded.is_empty() {
                println!("No resources specified");
                return Ok(());
            }
            let items = place(loaded, args.namespace.as_deref())?;
            let single = single_kind(&items);
            (items, single)
        }
        (None, Some(kind_name)) => {
            let kind = resolve_kind(kind_name)?;
            if args.names.is_empty() {
                bail!("no resources specified");
            }
            if args.names.iter().any(String::is_empty) {
                bail!("resource name may not be empty");
            }
            let scope =
                scope(kind, "", args.namespace.as_deref(), false).map_err(|e| anyhow!(e))?;
            let items = args
                .names
                .iter()
                .map(|name| Item {
                    location: None,
                    resource: identity(kind, scope.namespace(), name),
                })
                .collect();
            (items, Some(kind.as_str().to_owned()))
        }
        (None, None) => bail!("no resources specified"),
    };
    let client = connect_checked(global).await?;
    execute(&client, &items, action, single_kind.as_deref()).await
}

/// A resource carrying only its identity, for deletes by name.
fn identity(kind: Kind, namespace: &str, name: &str) -> AnyResource {
    let mut value = serde_json::json!({
        "apiVersion": kind.api_version(),
        "kind": kind.as_str(),
        "metadata": {"name": name},
    });
    if kind.namespaced() {
        value["metadata"]["namespace"] = namespace.into();
    }
    AnyResource::from_json_value_of_kind(kind, value)
        .expect("a bare identity is a valid document of every kind")
}

/// Applies calicoctl's namespace rules to each loaded resource.
fn place(loaded: Vec<Loaded>, cli_ns: Option<&str>) -> anyhow::Result<Vec<Item>> {
    let mut items = Vec::with_capacity(loaded.len());
    let mut problems = Vec::new();
    for Loaded {
        location,
        mut resource,
    } in loaded
    {
        let kind = resource.kind();
        match scope(kind, &resource.metadata().namespace, cli_ns, false) {
            Ok(scope) => {
                if kind.namespaced() {
                    resource.metadata_mut().namespace = scope.namespace().to_owned();
                }
                items.push(Item {
                    location: Some(location),
                    resource,
                });
            }
            Err(e) => problems.push(format!("{location}: {e}")),
        }
    }
    if !problems.is_empty() {
        bail!("failed to execute command: {}", problems.join("\n"));
    }
    Ok(items)
}

/// The one kind all items share, if they do.
fn single_kind(items: &[Item]) -> Option<String> {
    let kinds: BTreeSet<&str> = items.iter().map(|i| i.resource.kind().as_str()).collect();
    (kinds.len() == 1).then(|| kinds.into_iter().next().unwrap_or_default().to_owned())
}

/// Only name, namespace, resourceVersion, labels and annotations of a
/// manifest's metadata are used on create (calicoctl drops the rest).
fn metadata_for_create(resource: &AnyResource) -> AnyResource {
    let mut r = resource.clone();
    let m = resource.metadata();
    *r.metadata_mut() = ObjectMeta {
        name: m.name.clone(),
        namespace: m.namespace.clone(),
        resource_version: m.resource_version.clone(),
        labels: m.labels.clone(),
        annotations: m.annotations.clone(),
        ..ObjectMeta::default()
    };
    r
}

/// What calicoctl refuses before asking the datastore: Calico policies
/// named like converted Kubernetes policies, and ClusterInformation, which
/// calico-node owns.
pub fn refused(resource: &AnyResource, action: Action) -> Option<String> {
    let id = {
        let m = resource.metadata();
        calico_client::ResourceId::new(resource.kind(), m.namespace.clone(), m.name.clone())
    };
    match resource.kind() {
        Kind::NetworkPolicy if resource.metadata().name.starts_with(ETCD_NAME_PREFIX) => {
            let operation = match action {
                Action::Create { .. } => "create or apply",
                Action::Apply | Action::Replace => "apply or replace",
                Action::Delete { .. } => "delete",
                Action::Validate => return None,
            };
            Some(format!(
                "operation {operation} is not supported on {id}: kubernetes network policies must be managed through the kubernetes API"
            ))
        }
        Kind::ClusterInformation => Some(match action {
            Action::Create { .. } => {
                "operation create or apply is not supported on ClusterInformation".to_owned()
            }
            Action::Apply => {
                "operation apply is not supported on ClusterInformation: resource is readonly"
                    .to_owned()
            }
            Action::Replace => {
                "operation apply or replace is not supported on ClusterInformation".to_owned()
            }
            Action::Delete { .. } => {
                "operation delete is not supported on ClusterInformation".to_owned()
            }
            Action::Validate => return None,
        }),
        _ => None,
    }
}

async fn act(
    client: &Client<AnyBackend>,
    resource: &AnyResource,
    action: Action,
) -> Result<(), ClientError> {
    // Defaults may name a resource (a workload endpoint by its node, pod
    // and interface), which a delete needs.
    let mut named = resource.clone();
    if named.metadata().name.is_empty() {
        named.apply_defaults();
    }
    let m = named.metadata();
    match action {
        Action::Create { skip_exists } => {
            match client.create(metadata_for_create(resource)).await {
                Err(ClientError::AlreadyExists { .. }) if skip_exists => Ok(()),
                other => other.map(drop),
            }
        }
        Action::Apply => client.apply(metadata_for_create(resource)).await.map(drop),
        Action::Replace => client.update(resource.clone()).await.map(drop),
        Action::Delete { skip_not_exists } => {
            // A Kubernetes manifest's resourceVersion is not ours.
            let version = match resource.kind() {
                Kind::KubernetesNetworkPolicy => None,
                _ => Some(m.resource_version.as_str()),
            };
            match client
                .delete(resource.kind(), &m.namespace, &m.name, version)
                .await
            {
                Err(ClientError::NotFound { .. }) if skip_not_exists => Ok(()),
                other => other.map(drop),
            }
        }
        Action::Validate => Ok(()),
    }
}

async fn execute(
    client: &Client<AnyBackend>,
    items: &[Item],
    action: Action,
    single_kind: Option<&str>,
) -> anyhow::Result<()> {
    let mut handled = 0;
    let mut errors = Vec::new();
    for item in items {
        let outcome = match refused(&item.resource, action) {
            Some(message) => Err(message),
            None => act(client, &item.resource, action)
                .await
                .map_err(|e| error_text(&e)),
        };
        match outcome {
            Ok(()) => handled += 1,
            Err(message) => {
                tracing::info!(resource = %item.describe(), error = %message, "failed");
                errors.push(message);
                // calicoctl's replace stops at the first failure.
                if action == Action::Replace {
                    break;
                }
            }
        }
    }
    report(action, items.len(), handled, &errors, single_kind)
}

/// calicoctl's messages for the outcome of a command over `total`
/// resources.
fn report(
    action: Action,
    total: usize,
    handled: usize,
    errors: &[String],
    single_kind: Option<&str>,
) -> anyhow::Result<()> {
    let (verb, past) = (action.verb(), action.past());
    let what = |plural: bool| match single_kind {
        Some(kind) if plural => format!("'{kind}' resources"),
        Some(kind) => format!("'{kind}' resource(s)"),
        None => "resources".to_owned(),
    };
    if let Action::Delete { .. } = action {
        if handled > 0 {
            match single_kind {
                Some(kind) => println!("Successfully deleted {handled} '{kind}' resource(s)"),
                None => println!("Successfully deleted {handled} resource(s)"),
            }
        }
        if errors.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = errors
            .iter()
            .map(|e| match single_kind {
                Some(kind) => format!("Failed to delete '{kind}' resource: {e}"),
                None => format!("Failed to delete resource: {e}"),
            })
            .collect();
        bail!("{}", lines.join("\n"));
    }
    if handled == 0 {
        let errs = if action == Action::Replace {
            errors.first().cloned().unwrap_or_default()
        } else {
            go_list(errors)
        };
        match single_kind {
            Some(kind) if total == 1 => bail!("failed to {verb} '{kind}' resource: {errs}"),
            Some(kind) => bail!("failed to {verb} any '{kind}' resources: {errs}"),
            None => bail!("failed to {verb} any resources: {errs}"),
        }
    }
    if errors.is_empty() {
        match single_kind {
            Some(kind) => println!("Successfully {past} {handled} '{kind}' resource(s)"),
            None => println!("Successfully {past} {handled} resource(s)"),
        }
        return Ok(());
    }
    println!(
        "Partial success: {past} the first {handled} out of {total} {}:",
        what(true)
    );
    let errs = if action == Action::Replace {
        errors.first().cloned().unwrap_or_default()
    } else {
        go_list(errors)
    };
    bail!("hit error: {errs}")
}
