//! `convert -f FILE`: Kubernetes NetworkPolicies as the Calico v3
//! NetworkPolicies Calico converts them to, as older calicoctl printed
//! them: the Kubernetes name kept, the policy in tier `default` at order
//! 1000, cluster-specific metadata dropped (the creation time printed as
//! `null`), a rule's empty `source` and `destination` printed as `{}`,
//! several results in a v1 `List`. Nothing is read from or written to the
//! datastore.

use anyhow::{anyhow, bail};
use serde_json::{Map, Value};

use calico_model::document::{OutputFormat, print};
use calico_model::resource::AnyResource;
use calico_policy::knp;

use crate::cli::ConvertArgs;
use crate::files;

pub fn run(args: &ConvertArgs) -> anyhow::Result<()> {
    let format = match args.output.as_str() {
        "yaml" | "yml" => OutputFormat::Yaml,
        "json" => OutputFormat::Json,
        other => bail!("unrecognized output format '{other}'"),
    };
    let loaded = files::load(&args.filename, false, false)
        .map_err(|e| anyhow!("failed to create resources from file: {e:#}"))?;
    let mut results = Vec::with_capacity(loaded.len());
    for item in loaded {
        let AnyResource::KubernetesNetworkPolicy(policy) = &item.resource else {
            bail!(
                "failed to convert resource: {}: conversion for the resource type '{}' is not supported",
                item.location,
                item.resource.kind()
            );
        };
        let converted = knp::convert(policy).map_err(|e| {
            anyhow!("failed to convert resource: failed to convert k8s resource: {e}")
        })?;
        if !converted.dropped_rules.is_empty() {
            let reasons: Vec<String> = converted
                .dropped_rules
                .iter()
                .map(ToString::to_string)
                .collect();
            bail!(
                "failed to convert resource: failed to convert k8s resource: {}",
                reasons.join("; ")
            );
        }
        let mut calico = converted.policy;
        let meta = &mut calico.metadata;
        meta.uid.clear();
        meta.resource_version.clear();
        meta.creation_timestamp = None;
        meta.deletion_timestamp = None;
        meta.deletion_grace_period_seconds = None;
        let resource = AnyResource::NetworkPolicy(calico);
        if !args.ignore_validation {
            if let Err(e) = resource.validate() {
                bail!(
                    "converted manifest resource(s) failed validation: {e}\nRe-run the command with '--ignore-validation' flag to see the converted output"
                );
            }
        }
        let mut value = resource.to_json_value();
        if let Some(Value::Object(meta)) = value.get_mut("metadata") {
            // Go prints the zeroed creation time as null.
            meta.insert("creationTimestamp".into(), Value::Null);
        }
        if let Some(spec) = value.get_mut("spec") {
            write_empty_rule_sides(spec);
        }
        results.push(value);
    }
    let output = if results.len() > 1 {
        let mut list = Map::new();
        list.insert("kind".into(), "List".into());
        list.insert("apiVersion".into(), "v1".into());
        list.insert("metadata".into(), Value::Object(Map::new()));
        list.insert("items".into(), Value::Array(results));
        Value::Object(list)
    } else {
        match results.pop() {
            Some(one) => one,
            None => bail!("failed to create resources from file: no resources specified"),
        }
    };
    crate::output::emit(&print(&[output], format))?;
    Ok(())
}

/// The calicoctl releases that had `convert` wrote a rule's empty `source`
/// and `destination` as `{}`; Calico has since marked both `omitzero`, and
/// calico-model, following it, leaves them out. They are put back here, in
/// the place Go's field order gives them (after the protocol and ICMP
/// fields, before `http` and `metadata`).
fn write_empty_rule_sides(spec: &mut Value) {
    const SIDES: [(&str, &[&str]); 2] = [
        ("source", &["destination", "http", "metadata"]),
        ("destination", &["http", "metadata"]),
    ];
    for direction in ["ingress", "egress"] {
        let Some(Value::Array(rules)) = spec.get_mut(direction) else {
            continue;
        };
        for rule in rules.iter_mut().filter_map(Value::as_object_mut) {
            for (side, later) in SIDES {
                if !rule.contains_key(side) {
                    let at = rule
                        .keys()
                        .position(|k| later.contains(&k.as_str()))
                        .unwrap_or(rule.len());
                    rule.shift_insert(at, side.into(), Value::Object(Map::new()));
                }
            }
        }
    }
}
