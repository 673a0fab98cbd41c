//! `patch KIND NAME -p PATCH`: a JSON merge patch (RFC 7386) over the
//! stored resource, written back only if nobody changed it meanwhile.
//! calicoctl's default `strategic` type means the same for Calico
//! resources: their lists have no merge keys, so lists are replaced whole.

use anyhow::{anyhow, bail};
use serde_json::Value;

use calico_model::resource::AnyResource;

use super::{error_text, resolve_kind, resources, scope};
use crate::cli::{Global, PatchArgs};
use crate::datastore::connect_checked;

pub async fn run(global: &Global, args: &PatchArgs) -> anyhow::Result<()> {
    let kind = resolve_kind(&args.kind)?;
    if !matches!(args.patch_type.as_str(), "strategic" | "merge") {
        bail!(
            "patch type '{}' is not supported: use merge (or strategic, which is the same for Calico resources)",
            args.patch_type
        );
    }
    let patch: Value = serde_json::from_str(&args.patch)
        .or_else(|_| serde_yaml_ng::from_str(&args.patch))
        .map_err(|e| anyhow!("hit error: the patch is not valid JSON: {e}"))?;
    if !patch.is_object() {
        bail!("hit error: the patch must be a JSON object");
    }
    let scope = scope(kind, "", args.namespace.as_deref(), false).map_err(|e| anyhow!(e))?;
    let client = connect_checked(global).await?;

    let current = client
        .get(kind, scope.namespace(), &args.name)
        .await
        .map_err(|e| anyhow!("hit error: {}", error_text(&e)))?;
    // calicoctl writes a patch as a replace, and refuses it where it
    // refuses one.
    if let Some(message) = resources::refused(&current, resources::Action::Replace) {
        bail!("hit error: updating existing resource: {message}");
    }
    let mut doc = current.to_json_value();
    merge_patch(&mut doc, &patch);
    let mut patched = AnyResource::from_json_value_of_kind(current.kind(), doc)
        .map_err(|e| anyhow!("hit error: creating resource from patched data: {e}"))?;
    // The patch applies to what was read; the write fails if that changed.
    let meta = patched.metadata_mut();
    meta.name = current.metadata().name.clone();
    meta.namespace = current.metadata().namespace.clone();
    meta.resource_version = current.metadata().resource_version.clone();
    client
        .update(patched)
        .await
        .map_err(|e| anyhow!("hit error: updating existing resource: {}", error_text(&e)))?;
    println!("Successfully patched 1 '{}' resource", current.kind());
    Ok(())
}

/// RFC 7386: objects merge key by key, `null` removes a key, anything else
/// replaces the target.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::merge_patch;
    use serde_json::json;

    #[test]
    fn rfc7386_examples() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (json!(["a"]), json!({"a": "b"}), json!({"a": "b"})),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
        ];
        for (mut target, patch, want) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, want, "{patch}");
        }
    }
}
