//! `calicoctl ipam release`: one address (`--ip`), or the leaks that
//! every given `ipam check` report agrees on (`--from-report`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use calico_datastore::Backend;

use super::check::{CheckReport, HandleInfo, ReportMeta};
use crate::allocator::{Ipam, ReleaseOutcome};
use crate::block::ReleaseOptions;
use crate::error::IpamError;

/// Why a release from reports was refused before touching anything.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseRefused {
    #[error(
        "cluster does not match the provided report ({report}): mismatched cluster GUID. Refusing to release"
    )]
    ClusterMismatch { report: String },

    #[error(
        "the provided report ({report}) was produced using a different version ({version}) of calicoctl. Refusing to release"
    )]
    VersionMismatch { report: String, version: String },

    #[error(
        "the provided reports are all stale - at least one should be up-to-date. Please generate a new report while the data store is locked and try again"
    )]
    Stale,

    #[error("data store is not locked. Either lock the data store, or re-run with --force")]
    NotLocked,
}

/// The leaks every report agrees on: addresses not in use in any report
/// (with the handle and sequence number last seen, so an address
/// reallocated since is not touched) and handles leaked at the same
/// revision in every report.
pub fn merge_reports(
    reports: &[CheckReport],
) -> (
    BTreeMap<IpAddr, ReleaseOptions>,
    BTreeMap<String, HandleInfo>,
) {
    let mut ips: Option<BTreeMap<IpAddr, ReleaseOptions>> = None;
    let mut handles: Option<BTreeMap<String, HandleInfo>> = None;
    for report in reports {
        let mut merged = BTreeMap::new();
        for a in report.allocations.values().flatten() {
            if a.in_use || a.cooling_down {
                continue;
            }
            let Ok(addr) = a.ip.parse::<IpAddr>() else {
                continue;
            };
            if ips.as_ref().is_some_and(|prev| !prev.contains_key(&addr)) {
                continue;
            }
            merged.insert(
                addr,
                ReleaseOptions {
                    address: addr,
                    handle: (!a.handle.is_empty()).then(|| a.handle.clone()),
                    sequence_number: a.sequence_number,
                },
            );
        }
        ips = Some(merged);
        let mut merged = BTreeMap::new();
        for h in &report.leaked_handles {
            match &handles {
                None => {
                    merged.insert(h.id.clone(), h.clone());
                }
                Some(prev) if prev.get(&h.id).is_some_and(|p| p.revision == h.revision) => {
                    merged.insert(h.id.clone(), h.clone());
                }
                Some(_) => {}
            }
        }
        handles = Some(merged);
    }
    (ips.unwrap_or_default(), handles.unwrap_or_default())
}

/// What releasing from reports did.
#[derive(Debug, Default)]
pub struct ReleaseFromReports {
    /// Warnings printed first (`--force` overriding a check).
    pub warnings: Vec<String>,
    pub ips_requested: usize,
    /// `None` when there were no leaked addresses to release.
    pub ips: Option<ReleaseOutcome>,
    /// Handles deleted, skipped (gone or changed since the report), and
    /// failed, in the order they were handled.
    pub handles: Vec<(String, HandleResult)>,
}

/// What happened to one leaked handle.
#[derive(Debug)]
pub enum HandleResult {
    Deleted,
    /// Missing, or changed since the report.
    Skipped,
    Failed(IpamError),
}

impl<B: Backend> Ipam<B> {
    /// Releases what the reports agree is leaked, after Calico's checks:
    /// the reports must be from this cluster (never overridable), from
    /// this calicoctl `version`, at least one must be current, and the
    /// datastore must be locked (the last three overridable by `force`).
    pub async fn release_from_reports(
        &self,
        reports: &[(String, CheckReport)],
        cluster: &ReportMeta,
        version: &str,
        force: bool,
    ) -> Result<ReleaseFromReports, ReleaseError> {
        let mut out = ReleaseFromReports::default();
        let mut found_current = false;
        for (name, r) in reports {
            if r.cluster_guid != cluster.cluster_guid {
                return Err(ReleaseRefused::ClusterMismatch {
                    report: name.clone(),
                }
                .into());
            }
            if r.version != version {
                if !force {
                    return Err(ReleaseRefused::VersionMismatch {
                        report: name.clone(),
                        version: r.version.clone(),
                    }
                    .into());
                }
                out.warnings.push(
                    "WARNING: Report was produced using a different version of calicoctl. Ignoring due to --force option"
                        .into(),
                );
            }
            found_current |= r.cluster_info_revision == cluster.cluster_info_revision;
        }
        if !found_current {
            return Err(ReleaseRefused::Stale.into());
        }
        if !cluster.datastore_locked {
            if !force {
                return Err(ReleaseRefused::NotLocked.into());
            }
            out.warnings
                .push("WARNING: Data store is not locked. Ignoring due to --force option".into());
        }
        let only: Vec<CheckReport> = reports.iter().map(|(_, r)| r.clone()).collect();
        let (ips, handles) = merge_reports(&only);
        if !ips.is_empty() {
            let requests: Vec<ReleaseOptions> = ips.into_values().collect();
            out.ips_requested = requests.len();
            out.ips = Some(self.release_ips(&requests).await?);
        }
        for (id, info) in handles {
            let result = match self.store.get_handle(&id).await {
                Err(e) => HandleResult::Failed(e),
                Ok(None) => HandleResult::Skipped,
                Ok(Some(h)) if h.revision.to_string() != info.revision => HandleResult::Skipped,
                Ok(Some(h)) => match self.store.delete_handle(&id, h.revision).await {
                    Ok(c) if c.lost() => HandleResult::Skipped,
                    Ok(_) => HandleResult::Deleted,
                    Err(e) => HandleResult::Failed(e),
                },
            };
            out.handles.push((id, result));
        }
        Ok(out)
    }
}

/// A release from reports that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(transparent)]
    Refused(#[from] ReleaseRefused),
    #[error(transparent)]
    Ipam(#[from] IpamError),
}

/// calicoctl's output for a release from reports (the final "You may now
/// unlock the data store." included).
pub fn format_release_from_reports(r: &ReleaseFromReports) -> String {
    let mut s = String::new();
    for w in &r.warnings {
        let _ = writeln!(s, "{w}");
    }
    match &r.ips {
        None => s.push_str("Report didn't contain any leaked IPs to clean up.\n"),
        Some(outcome) => {
            let _ = writeln!(s, "Releasing {} old IPs...", r.ips_requested);
            if let Some((_, e)) = outcome.errors.first() {
                let _ = writeln!(
                    s,
                    "An error occurred while releasing some IPs: {}.  Problems are often caused by an out-of-date IPAM report.  Try regenerating the IPAM report and retry.",
                    calico_datastore::display_chain(e)
                );
            } else {
                let _ = writeln!(
                    s,
                    "Released {} IPs successfully",
                    r.ips_requested - outcome.not_allocated.len()
                );
            }
            if !outcome.not_allocated.is_empty() {
                let _ = writeln!(
                    s,
                    "{} addresses marked as leaked in the report had already been cleaned up.",
                    outcome.not_allocated.len()
                );
            }
        }
    }
    if r.handles.is_empty() {
        s.push_str("Report didn't contain any handles to clean up.\n");
    } else {
        let _ = writeln!(s, "Deleting {} handles...", r.handles.len());
        s.push_str("Key: '.' = Deleted OK; 'x' = skip, handle missing/changed.\n");
        let (mut ok, mut skipped, mut failed) = (0, 0, 0);
        for (id, result) in &r.handles {
            match result {
                HandleResult::Deleted => {
                    ok += 1;
                    s.push('.');
                }
                HandleResult::Skipped => {
                    skipped += 1;
                    s.push('x');
                }
                HandleResult::Failed(e) => {
                    failed += 1;
                    let _ = writeln!(
                        s,
                        "\nDeleting handle {id} failed: {}.",
                        calico_datastore::display_chain(e)
                    );
                }
            }
        }
        s.push('\n');
        let _ = writeln!(
            s,
            "Released {ok} handles; {skipped} skipped; {failed} errors."
        );
    }
    s.push_str("You may now unlock the data store.\n");
    s
}

/// calicoctl's answer to `ipam release --ip ADDR`: its output, or the
/// error it reports.
pub fn format_release_ip(addr: IpAddr, outcome: &ReleaseOutcome) -> Result<String, String> {
    if let Some((_, e)) = outcome.errors.first() {
        return Err(format!("error: {}", calico_datastore::display_chain(e)));
    }
    if !outcome.not_allocated.is_empty() {
        return Err(format!("IP address {addr} is not assigned"));
    }
    Ok(format!("Successfully released IP address {addr}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::check::Allocation;

    fn report(rev: &str, leaked: &[(&str, u64)], handles: &[(&str, &str)]) -> CheckReport {
        let mut r = CheckReport {
            version: "v1".into(),
            cluster_guid: "g".into(),
            cluster_info_revision: rev.into(),
            ..Default::default()
        };
        for (ip, seq) in leaked {
            r.allocations.insert(
                ip.to_string(),
                vec![Allocation {
                    ip: ip.to_string(),
                    handle: format!("h-{ip}"),
                    sequence_number: Some(*seq),
                    ..Default::default()
                }],
            );
        }
        r.allocations.insert(
            "10.0.0.99".into(),
            vec![Allocation {
                ip: "10.0.0.99".into(),
                in_use: true,
                ..Default::default()
            }],
        );
        r.leaked_handles = handles
            .iter()
            .map(|(id, rev)| HandleInfo {
                id: id.to_string(),
                uid: None,
                revision: rev.to_string(),
            })
            .collect();
        r
    }

    #[test]
    fn merging_keeps_only_what_every_report_agrees_on() {
        let a = report(
            "1",
            &[("10.0.0.1", 5), ("10.0.0.2", 6)],
            &[("x", "3"), ("y", "4")],
        );
        let b = report(
            "2",
            &[("10.0.0.2", 6), ("10.0.0.3", 1)],
            &[("x", "3"), ("y", "9")],
        );
        let (ips, handles) = merge_reports(&[a, b]);
        assert_eq!(
            ips.keys().map(|a| a.to_string()).collect::<Vec<_>>(),
            ["10.0.0.2"]
        );
        let opts = &ips[&"10.0.0.2".parse::<IpAddr>().unwrap()];
        assert_eq!(
            (opts.handle.as_deref(), opts.sequence_number),
            (Some("h-10.0.0.2"), Some(6))
        );
        assert_eq!(handles.keys().collect::<Vec<_>>(), ["x"]);
    }

    #[test]
    fn output_text() {
        let r = ReleaseFromReports {
            warnings: vec![
                "WARNING: Data store is not locked. Ignoring due to --force option".into(),
            ],
            ips_requested: 1,
            ips: Some(ReleaseOutcome {
                not_allocated: vec![],
                processed: vec![ReleaseOptions::address("10.0.0.1".parse().unwrap())],
                errors: vec![],
            }),
            handles: vec![
                ("a".into(), HandleResult::Deleted),
                ("b".into(), HandleResult::Skipped),
            ],
        };
        assert_eq!(
            format_release_from_reports(&r),
            "WARNING: Data store is not locked. Ignoring due to --force option\n\
             Releasing 1 old IPs...\n\
             Released 1 IPs successfully\n\
             Deleting 2 handles...\n\
             Key: '.' = Deleted OK; 'x' = skip, handle missing/changed.\n\
             .x\n\
             Released 1 handles; 1 skipped; 0 errors.\n\
             You may now unlock the data store.\n"
        );
        let empty = ReleaseFromReports::default();
        assert_eq!(
            format_release_from_reports(&empty),
            "Report didn't contain any leaked IPs to clean up.\nReport didn't contain any handles to clean up.\nYou may now unlock the data store.\n"
        );
        let addr: IpAddr = "10.0.0.1".parse().unwrap();
        let done = ReleaseOutcome::default();
        assert_eq!(
            format_release_ip(addr, &done).unwrap(),
            "Successfully released IP address 10.0.0.1\n"
        );
        let missing = ReleaseOutcome {
            not_allocated: vec![addr],
            ..Default::default()
        };
        assert_eq!(
            format_release_ip(addr, &missing).unwrap_err(),
            "IP address 10.0.0.1 is not assigned"
        );
    }
}
