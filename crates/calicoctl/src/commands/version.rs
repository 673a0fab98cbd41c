//! `version`: this calicoctl's version and, when the datastore can be
//! reached, the cluster's version and type from ClusterInformation.

use std::process::ExitCode;

use anyhow::anyhow;

use calico_client::CLUSTER_INFO_NAME;
use calico_model::kind::Kind;
use calico_model::resource::AnyResource;

use super::error_text;
use crate::cli::{Global, VersionArgs};
use crate::datastore::connect;

/// The commit this binary was built from, when the build recorded one.
const GIT_REVISION: &str = match option_env!("CALICO_GIT_REVISION") {
    Some(rev) => rev,
    None => "unknown",
};

pub async fn run(global: &Global, args: &VersionArgs) -> anyhow::Result<ExitCode> {
    println!("Client Version:    {}", crate::VERSION);
    println!("Git commit:        {GIT_REVISION}");
    if args.client {
        return Ok(ExitCode::SUCCESS);
    }
    let client = match connect(global).await {
        Ok(client) => client,
        Err(e) => {
            tracing::debug!(error = %format!("{e:#}"), "cannot reach the datastore");
            println!("Unable to detect installed Calico version");
            return Ok(ExitCode::SUCCESS);
        }
    };
    match client
        .get(Kind::ClusterInformation, "", CLUSTER_INFO_NAME)
        .await
    {
        Ok(AnyResource::ClusterInformation(info)) => {
            let or_unknown = |s: &str| {
                if s.is_empty() {
                    "unknown".to_owned()
                } else {
                    s.to_owned()
                }
            };
            println!(
                "Cluster Version:   {}",
                or_unknown(&info.spec.calico_version)
            );
            println!("Cluster Type:      {}", or_unknown(&info.spec.cluster_type));
            Ok(ExitCode::SUCCESS)
        }
        Ok(_) => unreachable!("a ClusterInformation read returns a ClusterInformation"),
        Err(e) => Err(anyhow!(
            "unable to retrieve Cluster Version or Type: {}",
            error_text(&e)
        )),
    }
}
