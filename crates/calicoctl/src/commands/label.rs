//! `label KIND NAME key=value [--overwrite]` and `label KIND NAME key
//! --remove`, with calicoctl's messages.

use anyhow::{anyhow, bail};

use super::{error_text, resolve_kind, resources, scope};
use crate::cli::{Global, LabelArgs};
use crate::datastore::connect_checked;

pub async fn run(global: &Global, args: &LabelArgs) -> anyhow::Result<()> {
    let (kind_arg, name) = (&args.kind, &args.name);
    let (key, value) = if args.remove {
        (args.label.clone(), String::new())
    } else {
        match args.label.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => bail!("invalid label {}", args.label),
        }
    };
    let kind = resolve_kind(kind_arg)?;
    let scope = scope(kind, "", args.namespace.as_deref(), false).map_err(|e| anyhow!(e))?;
    let client = connect_checked(global).await?;
    let mut resource = client
        .get(kind, scope.namespace(), name)
        .await
        .map_err(|e| anyhow!("failed to get {kind_arg} {name}, error {}", error_text(&e)))?;

    if let Some(message) = resources::refused(&resource, resources::Action::Replace) {
        bail!("failed to update {kind_arg} {name}, label not changed: {message}");
    }
    let labels = &mut resource.metadata_mut().labels;
    let mut overwritten = false;
    if args.remove {
        if labels.remove(&key).is_none() {
            bail!("cannot remove label of {kind_arg} {name}, key {key} does not exist");
        }
    } else {
        match labels.get(&key) {
            Some(old) if args.overwrite || *old == value => overwritten = true,
            Some(_) => bail!(
                "failed to update label of {kind_arg} {name}, key {key} is already present. please use '--overwrite' to set a new value"
            ),
            None => {}
        }
        labels.insert(key.clone(), value);
    }
    // Written only if the resource is still as read.
    client.update(resource).await.map_err(|e| {
        tracing::info!(error = %error_text(&e), "label update failed");
        anyhow!(
            "failed to update {kind_arg} {name}, label not changed: {}",
            error_text(&e)
        )
    })?;
    if args.remove {
        println!("Successfully removed label {key} from {kind_arg} {name}");
    } else if overwritten {
        println!("Successfully updated label {key} on {kind_arg} {name}");
    } else {
        println!("Successfully set label {key} on {kind_arg} {name}");
    }
    Ok(())
}
