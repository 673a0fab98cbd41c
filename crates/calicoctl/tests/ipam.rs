//! `ipam show|check|release|configure` over addresses handed out by
//! calico-ipam (as the CNI plugin would) in the same embedded datastore.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;

use calico_datastore::{AnyBackend, EmbeddedBackend};
use calico_ipam::{AutoAssignArgs, Ipam};
use common::Ctl;

const SETUP: &str = "\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool1
spec:
  cidr: 10.10.0.0/24
  blockSize: 26
---
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: node1
spec: {}
";

/// Hands out `n` addresses to a pod on node1 through calico-ipam.
fn allocate(ctl: &Ctl, pod: &str, n: usize) -> Vec<IpAddr> {
    let db = ctl.dir().join("calico.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let backend = EmbeddedBackend::open(&db).await.unwrap();
        let ipam = Ipam::new(AnyBackend::Embedded(backend));
        let attrs = BTreeMap::from([
            ("node".to_owned(), "node1".to_owned()),
            ("namespace".to_owned(), "default".to_owned()),
            ("pod".to_owned(), pod.to_owned()),
        ]);
        let got = ipam
            .auto_assign(&AutoAssignArgs {
                num4: n,
                handle: Some(format!("k8s-pod-network.{pod}")),
                attrs,
                hostname: "node1".to_owned(),
                ..Default::default()
            })
            .await
            .unwrap();
        got.addresses()
    })
}

#[test]
fn show_check_release_configure() {
    let ctl = Ctl::embedded();
    let file = ctl.file("setup.yaml", SETUP);
    ctl.run(&["create", "-f", &file]).ok();
    let ips = allocate(&ctl, "web", 3);
    assert_eq!(ips.len(), 3);

    let show = ctl.run(&["ipam", "show"]).ok().stdout;
    assert_eq!(
        show,
        "\
+----------+--------------+-----------+------------+--------------+-----------+
| GROUPING | CIDR         | IPS TOTAL | IPS IN USE | IPS RESERVED | IPS FREE  |
+----------+--------------+-----------+------------+--------------+-----------+
| IP Pool  | 10.10.0.0/24 |       256 |     3 (1%) |       0 (0%) | 253 (99%) |
+----------+--------------+-----------+------------+--------------+-----------+
"
    );
    let blocks = ctl.run(&["ipam", "show", "--show-blocks"]).ok().stdout;
    let block_row = blocks
        .lines()
        .find(|l| l.starts_with("| Block "))
        .unwrap_or_else(|| panic!("{blocks}"));
    assert!(
        block_row.contains("/26 |        64 |     3 (5%) |"),
        "{blocks}"
    );

    let ip = ips[0].to_string();
    let status = ctl.run(&["ipam", "show", "--ip", &ip]).ok().stdout;
    assert!(
        status.starts_with(&format!(
            "IP {ip} is in use\nHandle ID: k8s-pod-network.web\n"
        )),
        "{status}"
    );
    assert!(status.contains("  pod: web\n"), "{status}");
    let free = ctl
        .run(&["ipam", "show", "--ip", "10.10.0.200"])
        .ok()
        .stdout;
    assert_eq!(free, "10.10.0.200 is not assigned\n");
    let err = ctl.run(&["ipam", "show", "--ip", "10.10.0"]).failed();
    assert_eq!(
        err.stderr.trim_end(),
        "Error executing command: invalid IP address specified: 10.10.0"
    );

    // No workload endpoint uses these addresses: check calls them leaked
    // and writes a report release can use.
    let report = ctl.dir().join("report.json");
    let check = ctl
        .run(&[
            "ipam",
            "check",
            "--show-problem-ips",
            "-o",
            report.to_str().unwrap(),
        ])
        .ok()
        .stdout;
    assert!(check.starts_with("Checking IPAM for inconsistencies...\n\nLoading all IPAM blocks...\nFound 1 IPAM blocks.\n"), "{check}");
    assert!(
        check.contains("Check complete; found 3 problems."),
        "{check}"
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(saved["version"], format!("v{}", env!("CARGO_PKG_VERSION")));
    assert_eq!(saved["allocations"].as_object().unwrap().len(), 3);

    // Releasing from the report needs a locked datastore, unless forced.
    let err = ctl
        .run(&["ipam", "release", "--from-report", report.to_str().unwrap()])
        .failed();
    assert_eq!(
        err.stderr.trim_end(),
        "data store is not locked. Either lock the data store, or re-run with --force"
    );
    let released = ctl
        .run(&[
            "ipam",
            "release",
            "--from-report",
            report.to_str().unwrap(),
            "--force",
        ])
        .ok()
        .stdout;
    assert!(released.starts_with("WARNING: Data store is not locked. Ignoring due to --force option\nReleasing 3 old IPs...\nReleased 3 IPs successfully\n"), "{released}");
    assert!(
        released.ends_with("You may now unlock the data store.\n"),
        "{released}"
    );
    assert_eq!(
        ctl.run(&["ipam", "show", "--ip", &ip]).ok().stdout,
        format!("{ip} is not assigned\n")
    );

    // One address by hand.
    let more = allocate(&ctl, "db", 1);
    let one = more[0].to_string();
    let out = ctl.run(&["ipam", "release", "--ip", &one]).ok();
    assert_eq!(
        out.stdout,
        format!("Successfully released IP address {one}\n")
    );
    let err = ctl.run(&["ipam", "release", "--ip", &one]).failed();
    assert_eq!(
        err.stderr.trim_end(),
        format!("IP address {one} is not assigned")
    );

    // Settings.
    let out = ctl
        .run(&[
            "ipam",
            "configure",
            "--strictaffinity=true",
            "--max-blocks-per-host",
            "4",
        ])
        .ok();
    assert_eq!(
        out.stdout,
        "Successfully set StrictAffinity to: true\nSuccessfully set MaxBlocksPerHost to: 4\n"
    );
    let config = ctl
        .run(&["ipam", "show", "--show-configuration"])
        .ok()
        .stdout;
    assert!(config.contains("StrictAffinity"), "{config}");
    assert!(config.contains("| true "), "{config}");
    let err = ctl.run(&["ipam", "configure"]).failed();
    assert_eq!(
        err.stderr.trim_end(),
        "at least one configuration option must be specified"
    );
    let err = ctl
        .run(&["ipam", "configure", "--strictaffinity", "maybe"])
        .failed();
    assert_eq!(
        err.stderr.trim_end(),
        "invalid value. Use true or false to set strictaffinity"
    );
}
