//! IP address management as the `calico` plugin sees it: something that
//! hands out addresses for an attachment and takes them back.
//!
//! [`Ipam`] is the seam the plugin flow calls. It has two implementations:
//!
//! - [`ExecIpam`]: CNI delegation. Runs the plugin named by `ipam.type`
//!   (`host-local`, `calico-ipam`, …) from `CNI_PATH` with the same
//!   environment and configuration, as the specification and Calico do.
//! - [`CalicoIpam`]: Calico's IPAM in-process, without a fork and exec: the
//!   `calico-ipam` plugin's logic (families, pools, explicit addresses,
//!   handles, attributes) over an [`AddressAllocator`], which is what the
//!   block allocator over the datastore must implement.

mod calico;
mod exec;

use std::net::IpAddr;

use futures::future::BoxFuture;

use crate::config::{Attachment, NetConf};
use crate::env::CniEnv;
use crate::error::{CniError, ErrorCode};
use crate::names::WorkloadIds;
use crate::result::CniResult;

pub use calico::{
    AddressAllocator, AllocatorError, AutoAssign, AutoAssigned, CalicoIpam, ExplicitAssign,
};
pub use exec::ExecIpam;

/// One IPAM call for one attachment.
#[derive(Debug, Clone)]
pub struct IpamRequest<'a> {
    pub env: &'a CniEnv,
    pub conf: &'a NetConf,
    /// The configuration as given (with any per-pod adjustments already
    /// applied): what a delegated plugin receives on stdin.
    pub stdin: &'a [u8],
    /// `<network>.<container ID>`: the key every address of the attachment
    /// is recorded under.
    pub handle_id: &'a str,
    pub ids: &'a WorkloadIds,
    /// Specific addresses to assign instead of picking (`CNI_ARGS` `IP=`,
    /// or the pod's `cni.projectcalico.org/ipAddrs`).
    pub requested: &'a [IpAddr],
}

/// Why addresses could not be assigned, released or checked.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("IPAM plugin {plugin:?} not found in CNI_PATH ({})", searched.join(":"))]
    PluginNotFound {
        plugin: String,
        searched: Vec<String>,
    },
    #[error("running IPAM plugin {plugin}")]
    Exec {
        plugin: String,
        #[source]
        source: std::io::Error,
    },
    /// The delegated plugin answered with a CNI error; its code is kept.
    #[error("IPAM plugin {plugin} failed: {error}")]
    Plugin { plugin: String, error: CniError },
    #[error("IPAM plugin {plugin} printed a result that cannot be read")]
    Output {
        plugin: String,
        #[source]
        source: crate::result::ResultError,
    },
    #[error("IPAM returned no addresses")]
    NoAddresses,
    #[error("{0}")]
    Invalid(String),
    #[error("the datastore refused the IPAM operation")]
    Allocator {
        #[source]
        source: AllocatorError,
    },
    /// This build has no allocator for Calico's IPAM.
    #[error(
        "Calico IPAM (ipam type \"calico-ipam\") is not available in this build: the block allocator is not wired in yet"
    )]
    Unavailable,
}

impl IpamError {
    /// The CNI error to report: a delegated plugin's own code is kept, a
    /// datastore that is temporarily unavailable asks to retry.
    pub fn to_cni(&self, context: &str) -> CniError {
        match self {
            IpamError::Plugin { error, .. } => CniError {
                code: error.code,
                msg: format!("{context}: {}", error.msg),
                details: error.details.clone(),
            },
            IpamError::Allocator {
                source: AllocatorError::Unavailable(_),
            } => CniError::from_error(ErrorCode::TryAgainLater, self).prefixed(context),
            IpamError::Invalid(_) => {
                CniError::from_error(ErrorCode::InvalidConfig, self).prefixed(context)
            }
            _ => CniError::from_error(ErrorCode::Internal, self).prefixed(context),
        }
    }
}

impl CniError {
    pub(crate) fn prefixed(mut self, context: &str) -> Self {
        self.msg = format!("{context}: {}", self.msg);
        self
    }
}

/// Address management for the `calico` plugin.
pub trait Ipam: Send + Sync {
    /// Assigns addresses for the attachment. The result's addresses keep
    /// the prefix the IPAM chose (the block size for Calico); the plugin
    /// narrows them to /32 and /128.
    fn add<'a>(
        &'a self,
        request: &'a IpamRequest<'a>,
    ) -> BoxFuture<'a, Result<CniResult, IpamError>>;

    /// Releases everything held for the attachment; nothing held is success.
    fn del<'a>(&'a self, request: &'a IpamRequest<'a>) -> BoxFuture<'a, Result<(), IpamError>>;

    /// Checks that the attachment's addresses are still held.
    fn check<'a>(&'a self, request: &'a IpamRequest<'a>) -> BoxFuture<'a, Result<(), IpamError>>;

    /// Whether addresses can be assigned at all (CNI `STATUS`).
    fn status<'a>(
        &'a self,
        env: &'a CniEnv,
        conf: &'a NetConf,
        stdin: &'a [u8],
    ) -> BoxFuture<'a, Result<(), IpamError>>;

    /// Releases what is held for attachments of this network that are not in
    /// `valid` (CNI `GC`).
    fn gc<'a>(
        &'a self,
        env: &'a CniEnv,
        conf: &'a NetConf,
        stdin: &'a [u8],
        node: &'a str,
        valid: &'a [Attachment],
    ) -> BoxFuture<'a, Result<(), IpamError>>;
}

/// The IPAM a configuration asks for, given what this build offers:
/// Calico's in-process when `ipam.type` is `calico-ipam` and an allocator
/// is available, otherwise the delegated plugin.
pub fn select<'a>(
    conf: &NetConf,
    calico: Option<&'a dyn Ipam>,
    exec: &'a dyn Ipam,
) -> &'a dyn Ipam {
    match calico {
        Some(calico) if conf.ipam.ipam_type == "calico-ipam" => calico,
        _ => exec,
    }
}
