//! Bad input and unreachable datastores: what calicoctl says, that it
//! exits non-zero, and that nothing of a bad file is written.

mod common;

use std::time::{Duration, Instant};

use common::{Ctl, bare, run};

const TIER_THEN_BAD_POLICY: &str = "\
apiVersion: projectcalico.org/v3
kind: Tier
metadata:
  name: t1
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: t1.p
spec:
  tier: t1
  selector: all()
  ingress:
  - action: Allow
    destination:
      portz: [80]
";

#[test]
fn unknown_field_names_file_document_line_and_path_and_nothing_is_written() {
    let ctl = Ctl::embedded();
    let file = ctl.file("policy.yaml", TIER_THEN_BAD_POLICY);
    let err = ctl.run(&["apply", "-f", &file]).failed();
    let message = err.stderr.trim_end();
    assert!(
        message.starts_with("failed to execute command: "),
        "{message}"
    );
    assert!(
        message.contains("policy.yaml:16:7:"),
        "line of the field: {message}"
    );
    assert!(message.contains("document 2"), "{message}");
    assert!(
        message.contains("spec.ingress[0].destination.portz"),
        "{message}"
    );
    assert!(message.contains("unknown field `portz`"), "{message}");
    // The good first document was not applied either.
    let missing = ctl.run(&["get", "tier", "t1"]).failed();
    assert_eq!(
        missing.stderr.trim_end(),
        "resource does not exist: Tier(t1)"
    );
}

#[test]
fn invalid_resources_are_all_reported_before_anything_is_written() {
    let ctl = Ctl::embedded();
    let text = "\
apiVersion: projectcalico.org/v3
kind: Tier
metadata:
  name: t1
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: p
spec:
  selector: app == 'web' &&& x
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: Bad_Pool
spec:
  cidr: 10.0.0.1/8
";
    let file = ctl.file("mixed.yaml", text);
    for command in ["create", "apply", "replace"] {
        let err = ctl.run(&[command, "-f", &file]).failed();
        let message = err.stderr;
        let past = match command {
            "create" => "created",
            "apply" => "applied",
            _ => "replaced",
        };
        assert!(
            message.starts_with(&format!(
                "failed to {command} resources: 2 of 3 resource(s) are invalid, so nothing was {past}:\n"
            )),
            "{message}"
        );
        // The selector error says where in the selector.
        assert!(
            message.contains(
                "mixed.yaml: document 2: GlobalNetworkPolicy(p) is invalid: spec.selector:"
            ),
            "{message}"
        );
        assert!(message.contains("at position 15"), "{message}");
        assert!(
            message.contains("mixed.yaml: document 3: IPPool(Bad_Pool) is invalid"),
            "{message}"
        );
        assert!(message.contains("metadata.name"), "{message}");
        assert!(message.contains("spec.cidr"), "{message}");
    }
    ctl.run(&["get", "tier", "t1"]).failed();
    // validate says the same without a datastore.
    let err = ctl.run(&["validate", "-f", &file]).failed();
    assert!(
        err.stderr
            .starts_with("failed to validate resources: 2 of 3 resource(s) are invalid:\n"),
        "{}",
        err.stderr
    );
}

#[test]
fn continue_on_error_writes_the_valid_resources_and_still_fails() {
    let ctl = Ctl::embedded();
    let text = "\
apiVersion: projectcalico.org/v3
kind: Tier
metadata:
  name: t2
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: Bad_Pool
spec:
  cidr: 10.0.0.1/8
";
    let file = ctl.file("mixed.yaml", text);
    let err = ctl
        .run(&["apply", "--continue-on-error", "-f", &file])
        .failed();
    assert!(
        err.stderr
            .contains("1 resource(s) were invalid and not applied"),
        "{}",
        err.stderr
    );
    assert!(
        err.stderr
            .contains("mixed.yaml: document 2: IPPool(Bad_Pool) is invalid"),
        "{}",
        err.stderr
    );
    // The valid document was written; the invalid one was not.
    ctl.run(&["get", "tier", "t2"]).ok();
    ctl.run(&["get", "ippool", "Bad_Pool"]).failed();
}

#[test]
fn validate_needs_no_datastore() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pool.yaml");
    std::fs::write(
        &file,
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  cidr: 10.0.0.0/16\n",
    )
    .unwrap();
    // A datastore that cannot exist: validate never reaches for it.
    let mut cmd = bare();
    cmd.args(["validate", "-f", file.to_str().unwrap()])
        .env("ETCD_ENDPOINTS", "http://127.0.0.1:1");
    let out = run(cmd, None).ok();
    assert_eq!(
        out.stdout,
        "Successfully validated 1 'IPPool' resource(s)\n"
    );
}

#[test]
fn syntax_errors_and_unknown_kinds() {
    let ctl = Ctl::embedded();
    let err = ctl
        .run_with_stdin(&["create", "-f", "-"], Some("a: [\n"))
        .failed();
    assert!(
        err.stderr
            .starts_with("failed to execute command: stdin:2:1: document 1: invalid YAML/JSON"),
        "{}",
        err.stderr
    );
    let err = ctl
        .run_with_stdin(
            &["create", "-f", "-"],
            Some("apiVersion: projectcalico.org/v3\nkind: IPPol\nmetadata:\n  name: x\n"),
        )
        .failed();
    assert!(
        err.stderr.contains("unknown resource type"),
        "{}",
        err.stderr
    );
    assert!(err.stderr.contains("\"IPPol\""), "{}", err.stderr);
    let err = ctl
        .run_with_stdin(&["create", "-f", "-"], Some("# nothing here\n"))
        .failed();
    assert_eq!(
        err.stderr.trim_end(),
        "failed to execute command: no resources specified in file stdin"
    );
    let out = ctl
        .run_with_stdin(&["create", "-f", "-", "--skip-empty"], Some(""))
        .ok();
    assert_eq!(out.stdout, "No resources specified\n");
    let err = ctl
        .run(&["create", "-f", "/nonexistent/policy.yaml"])
        .failed();
    assert!(
        err.stderr.contains("/nonexistent/policy.yaml"),
        "{}",
        err.stderr
    );
    let err = ctl.run(&["get", "widgets"]).failed();
    assert_eq!(
        err.stderr.trim_end(),
        "resource type 'widgets' is not supported"
    );
    let err = ctl.run(&["get", "ippool", "-o", "table"]).failed();
    assert_eq!(err.stderr.trim_end(), "unrecognized output format 'table'");
    let err = ctl
        .run(&["get", "ippool", "-o", "custom-columns=NAME,BOGUS"])
        .failed();
    assert!(
        err.stderr
            .starts_with("unknown heading BOGUS, valid values are: "),
        "{}",
        err.stderr
    );
}

#[test]
fn duplicate_create_and_missing_delete() {
    let ctl = Ctl::embedded();
    let pool = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p1\nspec:\n  cidr: 10.1.0.0/16\n";
    let file = ctl.file("pool.yaml", pool);
    ctl.run(&["create", "-f", &file]).ok();
    let err = ctl.run(&["create", "-f", &file]).failed();
    assert_eq!(
        err.stderr.trim_end(),
        "failed to create 'IPPool' resource: [resource already exists: IPPool(p1)]"
    );
    // Overlapping pools are refused by the datastore-side checks.
    let overlap = ctl.file(
        "overlap.yaml",
        &pool
            .replace("p1", "p2")
            .replace("10.1.0.0/16", "10.1.128.0/17"),
    );
    let err = ctl.run(&["create", "-f", &overlap]).failed();
    assert!(
        err.stderr
            .contains("IPPool(p2) CIDR overlaps with IPPool(p1) CIDR 10.1.0.0/16"),
        "{}",
        err.stderr
    );
    let err = ctl.run(&["delete", "ippool", "p1", "nope"]).failed();
    assert_eq!(err.stdout, "Successfully deleted 1 'IPPool' resource(s)\n");
    assert_eq!(
        err.stderr.trim_end(),
        "Failed to delete 'IPPool' resource: resource does not exist: IPPool(nope)"
    );
    let err = ctl.run(&["delete", "ippool"]).failed();
    assert_eq!(err.stderr.trim_end(), "no resources specified");
    let err = ctl.run(&["get", "ippool", "p1", "p3"]).failed();
    assert_eq!(
        err.stderr.trim_end(),
        "resource does not exist: IPPool(p1)\nresource does not exist: IPPool(p3)"
    );
}

#[test]
fn policy_in_a_missing_tier() {
    let ctl = Ctl::embedded();
    let text = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: nope.p\nspec:\n  tier: nope\n";
    let file = ctl.file("p.yaml", text);
    let err = ctl.run(&["create", "-f", &file]).failed();
    assert_eq!(
        err.stderr.trim_end(),
        "failed to create 'GlobalNetworkPolicy' resource: [resource does not exist: Tier(nope)]"
    );
}

/// A free loopback port nobody listens on.
fn dead_endpoint() -> String {
    format!("http://127.0.0.1:{}", calico_testutil::free_port())
}

#[test]
fn unreachable_datastore_fails_fast_and_clearly() {
    let endpoints = [
        dead_endpoint(),
        // TEST-NET-1: nothing answers; the connect timeout bounds the wait.
        "http://192.0.2.1:2379".to_owned(),
    ];
    for endpoint in endpoints {
        let mut cmd = bare();
        cmd.args(["get", "ippool"]).env("ETCD_ENDPOINTS", &endpoint);
        let started = Instant::now();
        let out = run(cmd, None).failed();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(8), "{endpoint}: took {took:?}");
        assert!(
            out.stderr
                .starts_with("Failed to create Calico API client: "),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains(endpoint.trim_start_matches("http://")),
            "{}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }
    // version still prints the client's, and says it cannot tell the
    // cluster's.
    let mut cmd = bare();
    cmd.arg("version").env("ETCD_ENDPOINTS", dead_endpoint());
    let out = run(cmd, None).ok();
    assert_eq!(
        out.stdout,
        format!(
            "Client Version:    v{}\nGit commit:        unknown\nUnable to detect installed Calico version\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    // An explicitly named config file must exist.
    let mut cmd = bare();
    cmd.args(["get", "ippool", "-c", "/nonexistent/calicoctl.cfg"]);
    let out = run(cmd, None).failed();
    assert!(
        out.stderr.contains("/nonexistent/calicoctl.cfg"),
        "{}",
        out.stderr
    );
}

#[test]
fn version_reports_the_cluster() {
    let ctl = Ctl::embedded();
    // A fresh datastore has no ClusterInformation until something writes.
    let err = ctl.run(&["version"]).failed();
    assert!(
        err.stderr.contains("unable to retrieve Cluster Version or Type: resource does not exist: ClusterInformation(default)"),
        "{}",
        err.stderr
    );
    let file = ctl.file(
        "tier.yaml",
        "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata:\n  name: t\n",
    );
    ctl.run(&["create", "-f", &file]).ok();
    let out = ctl.run(&["version"]).ok();
    assert!(
        out.stdout
            .ends_with("Cluster Version:   unknown\nCluster Type:      unknown\n"),
        "{}",
        out.stdout
    );
    let out = ctl.run(&["version", "--client"]).ok();
    assert_eq!(out.stdout.lines().count(), 2);
}
