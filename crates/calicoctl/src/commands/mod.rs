//! One module per command; [`run`] dispatches.

mod convert;
mod explain;
mod get;
mod ipam;
mod label;
mod node;
mod patch;
mod resources;
mod selector;
mod version;

use std::process::ExitCode;

use anyhow::bail;

use calico_datastore::display_chain;
use calico_model::kind::Kind;

use crate::cli::{Cli, Command, NodeCommand, PolicyCommand};

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = &cli.global;
    match cli.command {
        Command::Create(args) => resources::file_command(
            global,
            &args.files,
            resources::Action::Create {
                skip_exists: args.skip_exists,
            },
        )
        .await
        .map(|()| ExitCode::SUCCESS),
        Command::Apply(args) => resources::file_command(global, &args, resources::Action::Apply)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Replace(args) => {
            resources::file_command(global, &args, resources::Action::Replace)
                .await
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Validate(args) => {
            resources::file_command(global, &args, resources::Action::Validate)
                .await
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Delete(args) => resources::delete(global, &args)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Get(args) => get::run(global, &args).await.map(|()| ExitCode::SUCCESS),
        Command::Patch(args) => patch::run(global, &args).await.map(|()| ExitCode::SUCCESS),
        Command::Label(args) => label::run(global, &args).await.map(|()| ExitCode::SUCCESS),
        Command::Convert(args) => convert::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Version(args) => version::run(global, &args).await,
        Command::Selector(command) => Ok(selector::run(&command)),
        Command::Policy(PolicyCommand::Explain(args)) => explain::run(global, &args).await,
        Command::Ipam(command) => ipam::run(global, &command).await,
        Command::Node(NodeCommand::Status) => node::status().await.map(|()| ExitCode::SUCCESS),
    }
}

/// The kind a command line names, or calicoctl's error.
pub fn resolve_kind(name: &str) -> anyhow::Result<Kind> {
    match Kind::from_cli_name(name) {
        Some(kind) => Ok(kind),
        None => bail!("resource type '{name}' is not supported"),
    }
}

/// Where a command works, after calicoctl's namespace rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A cluster-wide kind.
    Cluster,
    Namespace(String),
    /// `--all-namespaces`.
    AllNamespaces,
}

impl Scope {
    /// The namespace to store or look up under ("" for cluster-wide kinds
    /// and all namespaces).
    pub fn namespace(&self) -> &str {
        match self {
            Scope::Namespace(ns) => ns,
            Scope::Cluster | Scope::AllNamespaces => "",
        }
    }

    /// The namespace to list, `None` meaning every one.
    pub fn list_namespace(&self) -> Option<&str> {
        match self {
            Scope::Namespace(ns) => Some(ns),
            Scope::Cluster | Scope::AllNamespaces => None,
        }
    }
}

/// calicoctl's namespace rules for a resource of `kind` that names
/// `resource_ns` (possibly empty), given `-n` and `-A`.
pub fn scope(
    kind: Kind,
    resource_ns: &str,
    cli_ns: Option<&str>,
    all: bool,
) -> Result<Scope, String> {
    let cli_ns = cli_ns.filter(|ns| !ns.is_empty());
    if !kind.namespaced() {
        if !resource_ns.is_empty() {
            return Err(format!(
                "namespace should not be specified for a non-namespaced resource. {kind} is not a namespaced resource"
            ));
        }
        if all || cli_ns.is_some() {
            return Err(format!("{kind} is not namespaced"));
        }
        return Ok(Scope::Cluster);
    }
    match (resource_ns, cli_ns, all) {
        (_, Some(_), true) => Err(
            "cannot use both --namespace and --all-namespaces flags at the same time".to_owned(),
        ),
        (_, None, true) => Ok(Scope::AllNamespaces),
        ("", Some(ns), false) => Ok(Scope::Namespace(ns.to_owned())),
        ("", None, false) => Ok(Scope::Namespace("default".to_owned())),
        (res, None, false) => Ok(Scope::Namespace(res.to_owned())),
        (res, Some(ns), false) if res == ns => Ok(Scope::Namespace(res.to_owned())),
        (res, Some(ns), false) => Err(format!(
            "resource namespace does not match client namespace. {res} != {ns}"
        )),
    }
}

/// A client error with its causes, as one line.
pub fn error_text(e: &calico_client::Error) -> String {
    display_chain(e)
}

/// Go's `%v` of a slice of errors: `[first second]`.
pub fn go_list(errors: &[String]) -> String {
    format!("[{}]", errors.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_rules_are_calicos() {
        let np = Kind::NetworkPolicy;
        assert_eq!(
            scope(np, "", None, false),
            Ok(Scope::Namespace("default".into()))
        );
        assert_eq!(
            scope(np, "", Some("prod"), false),
            Ok(Scope::Namespace("prod".into()))
        );
        assert_eq!(
            scope(np, "prod", None, false),
            Ok(Scope::Namespace("prod".into()))
        );
        assert_eq!(scope(np, "prod", None, true), Ok(Scope::AllNamespaces));
        assert_eq!(
            scope(np, "a", Some("b"), false),
            Err("resource namespace does not match client namespace. a != b".into())
        );
        assert!(
            scope(np, "", Some("x"), true)
                .unwrap_err()
                .contains("at the same time")
        );
        assert_eq!(scope(Kind::IpPool, "", None, false), Ok(Scope::Cluster));
        assert_eq!(
            scope(Kind::IpPool, "", Some("x"), false),
            Err("IPPool is not namespaced".into())
        );
        assert!(
            scope(Kind::IpPool, "x", None, false)
                .unwrap_err()
                .contains("non-namespaced")
        );
    }

    #[test]
    fn kinds_resolve_from_any_alias() {
        assert_eq!(resolve_kind("gnp").unwrap(), Kind::GlobalNetworkPolicy);
        assert_eq!(resolve_kind("IPPools").unwrap(), Kind::IpPool);
        assert_eq!(
            resolve_kind("widget").unwrap_err().to_string(),
            "resource type 'widget' is not supported"
        );
    }
}
