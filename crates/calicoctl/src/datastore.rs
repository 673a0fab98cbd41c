//! Reaching the datastore: configuration from `--config` or the
//! environment, a bounded connect, and calicoctl's client/cluster version
//! check.

use std::time::Duration;

use anyhow::{Context, bail};

use calico_client::{CLUSTER_INFO_NAME, Client, Error as ClientError};
use calico_datastore::{AnyBackend, DatastoreConfig, display_chain};
use calico_model::kind::Kind;
use calico_model::resource::AnyResource;

use crate::cli::Global;

/// However a backend behaves, calicoctl gives up connecting after this.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// Connects to the configured datastore. Failing to is reported as
/// calicoctl reports it: `Failed to create Calico API client: ...`.
pub async fn connect(global: &Global) -> anyhow::Result<Client<AnyBackend>> {
    let config = DatastoreConfig::load(global.config.as_deref()).map_err(|e| {
        anyhow::anyhow!("Failed to create Calico API client: {}", display_chain(&e))
    })?;
    tracing::info!(datastore = %config.describe(), "connecting");
    let backend =
        match tokio::time::timeout(CONNECT_LIMIT, calico_datastore::connect(&config)).await {
            Ok(Ok(backend)) => backend,
            Ok(Err(e)) => bail!("Failed to create Calico API client: {}", display_chain(&e)),
            Err(_) => bail!(
                "Failed to create Calico API client: {} did not answer within {CONNECT_LIMIT:?}",
                config.describe()
            ),
        };
    Ok(Client::new(backend))
}

/// Connects, then refuses to go on when the cluster runs another Calico
/// version (unless `--allow-version-mismatch`), as calicoctl does.
pub async fn connect_checked(global: &Global) -> anyhow::Result<Client<AnyBackend>> {
    let client = connect(global).await?;
    if !global.allow_version_mismatch {
        check_version(&client).await?;
    }
    Ok(client)
}

/// `v3.31.0-0.dev` → `3.31.0`.
fn release(version: &str) -> &str {
    let v = version.strip_prefix('v').unwrap_or(version);
    v.split('-').next().unwrap_or(v)
}

async fn check_version(client: &Client<AnyBackend>) -> anyhow::Result<()> {
    let info = match client
        .get(Kind::ClusterInformation, "", CLUSTER_INFO_NAME)
        .await
    {
        Ok(AnyResource::ClusterInformation(info)) => info,
        Ok(_) | Err(ClientError::NotFound { .. }) => return Ok(()),
        Err(e) => {
            return Err(anyhow::Error::new(e)).context(
                "unable to get Cluster Information to verify version mismatch\nUse --allow-version-mismatch to override",
            );
        }
    };
    let cluster = &info.spec.calico_version;
    if cluster.is_empty() {
        return Ok(());
    }
    if release(cluster) != release(crate::VERSION) {
        bail!(
            "version mismatch.\nClient Version:   {}\nCluster Version:  {}\nUse --allow-version-mismatch to override",
            crate::VERSION,
            release(cluster)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::release;

    #[test]
    fn releases_compare_without_prefix_or_suffix() {
        assert_eq!(release("v3.31.0-0.dev-12"), "3.31.0");
        assert_eq!(release("3.31.0"), "3.31.0");
        assert_eq!(release("v0.1.0"), "0.1.0");
    }
}
