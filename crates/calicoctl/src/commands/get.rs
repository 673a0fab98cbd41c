//! `get KIND [NAME...]`: a listing (one table, or a `<Kind>List`
//! document) or named resources (a table each, or the resources as a
//! document or sequence), then an error line for each name not found.

use anyhow::{anyhow, bail};
use serde_json::Value;

use calico_client::Client;
use calico_datastore::AnyBackend;
use calico_model::document::{OutputFormat, print};
use calico_model::kind::Kind;
use calico_model::resource::AnyResource;
use calico_selector::Selector;

use super::{Scope, error_text, resolve_kind, scope};
use crate::cli::{GetArgs, Global};
use crate::datastore::connect_checked;
use crate::output::Format;
use crate::output::table::{self, CellContext};

pub async fn run(global: &Global, args: &GetArgs) -> anyhow::Result<()> {
    let kind = resolve_kind(&args.kind)?;
    let format = Format::parse(&args.output)?;
    let scope =
        scope(kind, "", args.namespace.as_deref(), args.all_namespaces).map_err(|e| anyhow!(e))?;
    if !args.names.is_empty() && scope == Scope::AllNamespaces {
        bail!("cannot use --all-namespace flag for getting a single resource");
    }
    if args.names.iter().any(String::is_empty) {
        bail!("resource name may not be empty");
    }
    let selector = match &args.selector {
        Some(text) => {
            Some(Selector::parse(text).map_err(|e| anyhow!("invalid --selector {text:?}: {e}"))?)
        }
        None => None,
    };
    let print_namespace = args.all_namespaces || args.namespace.is_some();
    let client = connect_checked(global).await?;

    let mut errors = Vec::new();
    let mut out = String::new();
    if args.names.is_empty() {
        let list = client
            .list(kind, scope.list_namespace(), selector.as_ref())
            .await
            .map_err(|e| anyhow!("failed to get resources: {}", error_text(&e)))?;
        let ctx = cell_context(&client, list.kind, &format).await;
        out = render(
            list.kind,
            &[list.to_json_value()],
            Some(&list.items),
            &format,
            print_namespace,
            &ctx,
        )?;
    } else {
        let mut found = Vec::new();
        for name in &args.names {
            match client.get(kind, scope.namespace(), name).await {
                Ok(r)
                    if selector
                        .as_ref()
                        .is_none_or(|s| s.evaluate(&r.metadata().labels)) =>
                {
                    found.push(r)
                }
                Ok(_) => {}
                Err(e) => errors.push(error_text(&e)),
            }
        }
        if let Some(first) = found.first() {
            let shown_kind = first.kind();
            let ctx = cell_context(&client, shown_kind, &format).await;
            let values: Vec<Value> = found
                .iter()
                .map(|r| {
                    if args.export {
                        export(r)
                    } else {
                        r.to_json_value()
                    }
                })
                .collect();
            if format.is_table() {
                for (r, v) in found.iter().zip(&values) {
                    out.push_str(&render(
                        r.kind(),
                        std::slice::from_ref(v),
                        None,
                        &format,
                        print_namespace,
                        &ctx,
                    )?);
                }
            } else {
                out = render(shown_kind, &values, None, &format, print_namespace, &ctx)?;
            }
        }
    }
    crate::output::emit(&out)?;
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(())
}

/// Output for `objects`: documents as they are, or a table of `items` (a
/// listing's) or of the objects themselves.
fn render(
    kind: Kind,
    objects: &[Value],
    items: Option<&[AnyResource]>,
    format: &Format,
    print_namespace: bool,
    ctx: &CellContext,
) -> anyhow::Result<String> {
    let headings: Vec<&str> = match format {
        Format::Yaml => return Ok(print(objects, OutputFormat::Yaml)),
        Format::Json => return Ok(print(objects, OutputFormat::Json)),
        Format::Ps => table::default_headings(kind, false, print_namespace),
        Format::Wide => table::default_headings(kind, true, print_namespace),
        Format::Columns(columns) => columns.iter().map(String::as_str).collect(),
    };
    let rows: Vec<Value> = match items {
        Some(items) => items.iter().map(AnyResource::to_json_value).collect(),
        None => objects.to_vec(),
    };
    Ok(table::table(kind, &headings, &rows, ctx)?)
}

/// The cluster's default AS number, which the node table shows for nodes
/// without their own (calicoctl reads it from BGPConfiguration `default`).
async fn cell_context(client: &Client<AnyBackend>, kind: Kind, format: &Format) -> CellContext {
    if kind != Kind::Node || !format.is_table() {
        return CellContext::default();
    }
    let as_number = match client.get(Kind::BgpConfiguration, "", "default").await {
        Ok(config) => match config.to_json_value().pointer("/spec/asNumber") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            _ => "64512".to_owned(),
        },
        Err(e) if e.is_not_found() => "64512".to_owned(),
        Err(_) => "unknown".to_owned(),
    };
    CellContext {
        default_as_number: Some(as_number),
    }
}

/// `--export`: without what belongs to one cluster (namespace, uid,
/// resourceVersion, creation and deletion times).
fn export(resource: &AnyResource) -> Value {
    let mut value = resource.to_json_value();
    if let Some(Value::Object(meta)) = value.get_mut("metadata") {
        for field in [
            "namespace",
            "uid",
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            meta.remove(field);
        }
        // Go prints the zero time it leaves behind as null.
        meta.insert("creationTimestamp".into(), Value::Null);
    }
    value
}
