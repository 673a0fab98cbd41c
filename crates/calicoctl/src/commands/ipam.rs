//! `ipam show|check|release|configure`: flags and messages as calicoctl's;
//! the data and report text come from calico-ipam.

use std::net::IpAddr;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};

use calico_client::{CLUSTER_INFO_NAME, Client};
use calico_datastore::{AnyBackend, display_chain};
use calico_ipam::Ipam;
use calico_ipam::ReleaseOptions;
use calico_ipam::report::{
    CheckInput, CheckReport, ConfigureArgs, ReportMeta, format_borrowed, format_config,
    format_ip_status, format_release_from_reports, format_release_ip, format_utilization,
};
use calico_model::kind::Kind;
use calico_model::resource::AnyResource;

use crate::cli::{Global, IpamCommand};
use crate::datastore::connect_checked;

pub async fn run(global: &Global, command: &IpamCommand) -> anyhow::Result<ExitCode> {
    // Bad input is reported before the datastore is asked anything.
    match command {
        IpamCommand::Show { ip: Some(ip), .. } | IpamCommand::Release { ip: Some(ip), .. } => {
            parse_ip(ip)?;
        }
        _ => {}
    }
    let configure = match command {
        IpamCommand::Configure {
            strictaffinity,
            max_blocks_per_host,
            kubevirt_ip_persistence,
            ip_cooldown_seconds,
        } => Some(
            ConfigureArgs::from_flags(
                strictaffinity,
                max_blocks_per_host,
                kubevirt_ip_persistence,
                *ip_cooldown_seconds,
            )
            .map_err(|e| anyhow!(e))?,
        ),
        _ => None,
    };
    let client = connect_checked(global).await?;
    let ipam = Ipam::new(client.backend().clone());
    let ipam_error = |e: calico_ipam::IpamError| anyhow!("{}", display_chain(&e));

    match command {
        IpamCommand::Show {
            ip,
            show_blocks,
            show_borrowed,
            show_configuration,
        } => {
            let text = if let Some(ip) = ip {
                let addr = parse_ip(ip)?;
                let status = ipam.ip_status(addr).await.map_err(ipam_error)?;
                format_ip_status(addr, &status).map_err(|e| anyhow!(e))?
            } else if *show_blocks {
                format_utilization(&ipam.utilization(&[]).await.map_err(ipam_error)?, true)
            } else if *show_borrowed {
                format_borrowed(&ipam.borrowed_ips().await.map_err(ipam_error)?)
            } else if *show_configuration {
                format_config(&ipam.get_config().await.map_err(ipam_error)?)
            } else {
                format_utilization(&ipam.utilization(&[]).await.map_err(ipam_error)?, false)
            };
            crate::output::emit(&text)?;
        }
        IpamCommand::Check {
            show_all_ips,
            show_problem_ips,
            output,
            ..
        } => {
            let meta = report_meta(&client).await?;
            let input = CheckInput {
                nodes: ipam.list_nodes().await.map_err(ipam_error)?,
                workload_endpoints: ipam.list_workload_endpoints().await.map_err(ipam_error)?,
                // Calico's LoadBalancer controller needs Kubernetes services,
                // which an etcd or embedded datastore does not hold.
                load_balancers: None,
                meta,
            };
            let check = ipam.check(&input).await.map_err(ipam_error)?;
            crate::output::emit(&check.render(*show_all_ips, *show_all_ips || *show_problem_ips))?;
            if let Some(path) = output {
                std::fs::write(path, check.report.to_json())
                    .with_context(|| format!("cannot write the report to {path}"))?;
            }
        }
        IpamCommand::Release {
            ip,
            from_report,
            force,
        } => {
            if !from_report.is_empty() {
                let meta = report_meta(&client).await?;
                let mut reports = Vec::with_capacity(from_report.len());
                for path in from_report {
                    let text =
                        std::fs::read_to_string(path).with_context(|| format!("open {path}"))?;
                    let report = CheckReport::from_json(&text)
                        .with_context(|| format!("{path} is not an ipam check report"))?;
                    reports.push((path.clone(), report));
                }
                let released = ipam
                    .release_from_reports(&reports, &meta, crate::VERSION, *force)
                    .await
                    .map_err(|e| anyhow!("{}", display_chain(&e)))?;
                crate::output::emit(&format_release_from_reports(&released))?;
            } else if let Some(ip) = ip {
                let addr = parse_ip(ip)?;
                let outcome = ipam
                    .release_ips(&[ReleaseOptions {
                        address: addr,
                        handle: None,
                        sequence_number: None,
                    }])
                    .await
                    .map_err(|e| anyhow!("error: {}", display_chain(&e)))?;
                crate::output::emit(&format_release_ip(addr, &outcome).map_err(|e| anyhow!(e))?)?;
            }
        }
        IpamCommand::Configure { .. } => {
            let args = configure.expect("parsed above for configure");
            crate::output::emit(&ipam.configure(&args).await.map_err(ipam_error)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// calicoctl's check of an `--ip` argument.
fn parse_ip(text: &str) -> anyhow::Result<IpAddr> {
    match text.parse() {
        Ok(ip) => Ok(ip),
        Err(_) => bail!("Error executing command: invalid IP address specified: {text}"),
    }
}

/// What the check report records about the cluster (from
/// ClusterInformation, which must exist, as in calicoctl).
async fn report_meta(client: &Client<AnyBackend>) -> anyhow::Result<ReportMeta> {
    let info = match client
        .get(Kind::ClusterInformation, "", CLUSTER_INFO_NAME)
        .await
    {
        Ok(AnyResource::ClusterInformation(info)) => info,
        Ok(_) => unreachable!("a ClusterInformation read returns a ClusterInformation"),
        Err(e) => bail!("{}", display_chain(&e)),
    };
    Ok(ReportMeta {
        version: crate::VERSION.to_owned(),
        cluster_guid: info.spec.cluster_guid.clone(),
        cluster_type: info.spec.cluster_type.clone(),
        cluster_info_revision: info.metadata.resource_version.clone(),
        datastore_locked: info.spec.datastore_ready == Some(false),
    })
}

#[cfg(test)]
mod tests {
    use super::parse_ip;

    #[test]
    fn ip_arguments() {
        assert_eq!(parse_ip("10.0.0.1").unwrap().to_string(), "10.0.0.1");
        assert_eq!(parse_ip("fd00::1").unwrap().to_string(), "fd00::1");
        assert_eq!(
            parse_ip("10.0.0").unwrap_err().to_string(),
            "Error executing command: invalid IP address specified: 10.0.0"
        );
    }
}
