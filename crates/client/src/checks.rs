//! The checks Calico's client makes against the datastore around a write:
//! a policy's tier must exist, IP pools must not overlap or change their
//! CIDR or block size, built-in and non-empty tiers cannot be deleted, and
//! a pool is disabled, and its block affinities released, before it is
//! deleted.

use calico_datastore::Backend;
use calico_ipam::Ipam;
use calico_model::ippool::{IpPool, IpPoolAllowedUse};
use calico_model::kind::Kind;
use calico_model::policy::{DEFAULT_TIER_NAME, KUBE_ADMIN_TIER_NAME, KUBE_BASELINE_TIER_NAME};
use calico_model::resource::AnyResource;
use calico_model::validate::{ValidationError, ValidationErrors};

use crate::client::{Client, id_of};
use crate::error::{Error, ResourceId};

/// Tiers that always exist and cannot be deleted.
pub const PROTECTED_TIERS: [&str; 3] = [
    DEFAULT_TIER_NAME,
    KUBE_ADMIN_TIER_NAME,
    KUBE_BASELINE_TIER_NAME,
];

/// Where IPAM keeps its allocation blocks (`<network>-<prefix length>`).
const IPAM_BLOCK_PREFIXES: [&str; 2] = [
    "/calico/ipam/v2/assignment/ipv4/block/",
    "/calico/ipam/v2/assignment/ipv6/block/",
];

fn policy_tier(resource: &AnyResource) -> Option<&str> {
    let tier = match resource {
        AnyResource::NetworkPolicy(p) => &p.spec.tier,
        AnyResource::GlobalNetworkPolicy(p) => &p.spec.tier,
        AnyResource::StagedNetworkPolicy(p) => &p.spec.tier,
        AnyResource::StagedGlobalNetworkPolicy(p) => &p.spec.tier,
        _ => return None,
    };
    Some(if tier.is_empty() {
        DEFAULT_TIER_NAME
    } else {
        tier
    })
}

pub(crate) async fn before_create<B: Backend>(
    client: &Client<B>,
    resource: &AnyResource,
) -> Result<(), Error> {
    if let Some(tier) = policy_tier(resource) {
        // The tier's own NotFound is what Calico reports.
        client.get(Kind::Tier, "", tier).await?;
    }
    if let AnyResource::IpPool(pool) = resource {
        pool_fits(client, pool).await?;
    }
    Ok(())
}

pub(crate) async fn before_update<B: Backend>(
    _client: &Client<B>,
    current: &AnyResource,
    update: &AnyResource,
) -> Result<(), Error> {
    if let (AnyResource::IpPool(old), AnyResource::IpPool(new)) = (current, update) {
        let mut errors = Vec::new();
        if old.spec.network() != new.spec.network() && old.spec.cidr != new.spec.cidr {
            errors.push(field("spec.cidr", "IPPool CIDR cannot be modified"));
        }
        if old.spec.block_size != new.spec.block_size {
            errors.push(field(
                "spec.blockSize",
                "IPPool BlockSize cannot be modified",
            ));
        }
        let was_load_balancer = old
            .spec
            .allowed_uses
            .contains(&IpPoolAllowedUse::LoadBalancer);
        if was_load_balancer
            && new
                .spec
                .allowed_uses
                .iter()
                .any(|u| *u != IpPoolAllowedUse::LoadBalancer)
        {
            errors.push(field(
                "spec.allowedUses",
                "IPPool allowed use cannot be changed from LoadBalancer to Workload or Tunnel",
            ));
        }
        if !errors.is_empty() {
            return Err(Error::Invalid {
                id: id_of(update),
                errors: ValidationErrors(errors),
            });
        }
    }
    Ok(())
}

/// Runs before a delete; returns the revision the delete must still find
/// (changed when the delete had to write first).
pub(crate) async fn before_delete<B: Backend + Clone>(
    client: &Client<B>,
    id: &ResourceId,
    expected: Option<i64>,
) -> Result<Option<i64>, Error> {
    match id.kind {
        Kind::Tier => {
            if PROTECTED_TIERS.contains(&id.name.as_str()) {
                return Err(Error::NotSupported {
                    operation: "delete",
                    id: id.clone(),
                    reason: format!("Cannot delete {} tier", id.name),
                });
            }
            for kind in [
                Kind::NetworkPolicy,
                Kind::GlobalNetworkPolicy,
                Kind::StagedNetworkPolicy,
                Kind::StagedGlobalNetworkPolicy,
            ] {
                let policies = client.list(kind, None, None).await?;
                if policies
                    .items
                    .iter()
                    .any(|p| policy_tier(p) == Some(id.name.as_str()))
                {
                    return Err(Error::NotSupported {
                        operation: "delete",
                        id: id.clone(),
                        reason: "Cannot delete a non-empty tier".to_owned(),
                    });
                }
            }
            Ok(expected)
        }
        Kind::IpPool => {
            // As Calico does: disable the pool so nothing allocates from it
            // while it goes (the delete then applies to that write), and
            // release every host's affinity for its blocks.
            let AnyResource::IpPool(mut pool) = client.get(Kind::IpPool, "", &id.name).await?
            else {
                return Ok(expected);
            };
            let mut expected = expected;
            if !pool.spec.disabled {
                if let Some(expected) = expected {
                    pool.metadata.resource_version = expected.to_string();
                }
                pool.spec.disabled = true;
                let disabled = client.update(AnyResource::IpPool(pool.clone())).await?;
                expected = disabled.metadata().resource_version.parse().ok();
            }
            if let Some(net) = pool.spec.network() {
                Ipam::new(client.backend().clone())
                    .release_pool_affinities(&net)
                    .await
                    .map_err(|source| Error::Ipam {
                        id: id.clone(),
                        source: Box::new(source),
                    })?;
            }
            Ok(expected)
        }
        _ => Ok(expected),
    }
}

fn field(path: &str, message: impl Into<String>) -> ValidationError {
    ValidationError {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// A new pool must not overlap another, nor cover allocation blocks of
/// another size.
async fn pool_fits<B: Backend>(client: &Client<B>, pool: &IpPool) -> Result<(), Error> {
    let Some(net) = pool.spec.network() else {
        return Ok(());
    };
    let mut errors = Vec::new();
    for other in client.list(Kind::IpPool, None, None).await?.items {
        let AnyResource::IpPool(other) = other else {
            continue;
        };
        if other.metadata.name == pool.metadata.name {
            continue;
        }
        let Some(other_net) = other.spec.network() else {
            continue;
        };
        if other_net.contains(&net) || net.contains(&other_net) {
            errors.push(field(
                "spec.cidr",
                format!(
                    "IPPool({}) CIDR overlaps with IPPool({}) CIDR {}",
                    pool.metadata.name, other.metadata.name, other.spec.cidr
                ),
            ));
        }
    }
    for prefix in IPAM_BLOCK_PREFIXES {
        let blocks =
            client
                .backend()
                .list(prefix)
                .await
                .map_err(|source| Error::DatastoreList {
                    kind: Kind::IpPool,
                    source: Box::new(source),
                })?;
        for kv in blocks.kvs {
            let Some(block) = kv
                .key
                .strip_prefix(prefix)
                .and_then(|b| b.replacen('-', "/", 1).parse::<ipnet::IpNet>().ok())
            else {
                continue;
            };
            let overlaps = block.contains(&net) || net.contains(&block);
            if overlaps && i64::from(block.prefix_len()) != pool.spec.block_size {
                errors.push(field(
                    "spec.blockSize",
                    "IPPool blocksSize conflicts with existing allocations that use a different blockSize",
                ));
                break;
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid {
            id: id_of(&AnyResource::IpPool(pool.clone())),
            errors: ValidationErrors(errors),
        })
    }
}
