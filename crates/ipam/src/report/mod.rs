//! `calicoctl ipam show|check|release|configure`: each command's data, as
//! a function of [`Ipam`](crate::Ipam), and a formatter printing exactly
//! what calicoctl prints. calicoctl parses its flags, calls these, and
//! prints the text.

mod check;
mod configure;
mod release;
mod show;
pub(crate) mod table;

pub use check::{
    Allocation, Check, CheckInput, CheckReport, HandleInfo, LoadBalancerService, OrphanedAffinity,
    ReportMeta,
};
pub use configure::ConfigureArgs;
pub use release::{
    HandleResult, ReleaseError, ReleaseFromReports, ReleaseRefused, format_release_from_reports,
    format_release_ip, merge_reports,
};
pub use show::{
    BlockUsage, BorrowedIp, BorrowedReport, IpStatus, ORPHANED_BLOCKS, PoolUsage, format_borrowed,
    format_config, format_ip_status, format_utilization,
};
