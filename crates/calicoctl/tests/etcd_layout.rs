//! What calicoctl writes to etcd is Calico's layout (read back with
//! etcdctl), and what Calico wrote is readable by calicoctl.

mod common;

use common::Ctl;
use serde_json::{Value, json};

const ROOT: &str = "/calico/resources/v3/projectcalico.org/";

fn etcdctl_get(ctl: &Ctl, args: &[&str]) -> String {
    let etcd = ctl.etcd.as_ref().unwrap();
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    String::from_utf8(etcd.etcdctl_ok(&all).stdout).unwrap()
}

#[test]
fn keys_and_values_are_calicos() {
    let ctl = Ctl::etcd();
    let docs = "\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: default-ipv4-ippool
spec:
  cidr: 192.168.0.0/16
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: deny-all
spec:
  selector: app == 'a' && env != 'b'
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: allow
  namespace: prod
spec:
  selector: all()
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web
  namespace: prod
spec:
  podSelector: {}
";
    let file = ctl.file("docs.yaml", docs);
    ctl.run(&["create", "-f", &file]).ok();

    let keys = etcdctl_get(&ctl, &["--prefix", ROOT, "--keys-only"]);
    let keys: Vec<&str> = keys.lines().filter(|l| !l.is_empty()).collect();
    let want: Vec<String> = [
        "clusterinformations/default",
        "globalnetworkpolicies/deny-all",
        "ippools/default-ipv4-ippool",
        "networkpolicies/prod/allow",
        "networkpolicies/prod/knp.default.web",
        "tiers/default",
        "tiers/kube-admin",
        "tiers/kube-baseline",
    ]
    .iter()
    .map(|k| format!("{ROOT}{k}"))
    .collect();
    assert_eq!(keys, want);

    // The pool as Calico's etcdv3 backend writes it: kind and apiVersion
    // first, no resourceVersion (the revision is the version).
    let raw = etcdctl_get(
        &ctl,
        &[
            "--print-value-only",
            &format!("{ROOT}ippools/default-ipv4-ippool"),
        ],
    );
    assert!(raw.starts_with(r#"{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"default-ipv4-ippool","uid":""#), "{raw}");
    let pool: Value = serde_json::from_str(raw.trim_end()).unwrap();
    assert!(pool["metadata"].get("resourceVersion").is_none(), "{pool}");
    assert_eq!(pool["spec"]["blockSize"], 26);
    assert_eq!(pool["spec"]["nodeSelector"], "all()");

    // Policies keep their name in Calico's metadata annotation, and
    // selectors use Go's JSON escaping.
    let raw = etcdctl_get(
        &ctl,
        &[
            "--print-value-only",
            &format!("{ROOT}globalnetworkpolicies/deny-all"),
        ],
    );
    assert!(
        raw.contains(r#""selector":"app == 'a' \u0026\u0026 env != 'b'""#),
        "{raw}"
    );
    let gnp: Value = serde_json::from_str(raw.trim_end()).unwrap();
    assert_eq!(
        gnp["metadata"]["annotations"]["projectcalico.org/metadata"],
        r#"{"name":"deny-all"}"#
    );
    assert_eq!(
        gnp["metadata"]["labels"]["projectcalico.org/tier"],
        "default"
    );
    // The Kubernetes policy, as kube-controllers stores it.
    let raw = etcdctl_get(
        &ctl,
        &[
            "--print-value-only",
            &format!("{ROOT}networkpolicies/prod/knp.default.web"),
        ],
    );
    let knp: Value = serde_json::from_str(raw.trim_end()).unwrap();
    assert_eq!(knp["spec"]["order"], 1000);
    assert_eq!(
        knp["spec"]["selector"],
        "projectcalico.org/orchestrator == 'k8s'"
    );

    // calicoctl's resourceVersion is the key's mod revision.
    let v = ctl
        .run(&["get", "ippool", "default-ipv4-ippool", "-o", "json"])
        .ok()
        .json();
    let revision = etcdctl_get(
        &ctl,
        &["-w", "json", &format!("{ROOT}ippools/default-ipv4-ippool")],
    );
    let revision: Value = serde_json::from_str(&revision).unwrap();
    assert_eq!(
        v["metadata"]["resourceVersion"].as_str().unwrap(),
        revision["kvs"][0]["mod_revision"].to_string()
    );
}

#[test]
fn values_written_by_calico_are_readable() {
    let ctl = Ctl::etcd();
    let etcd = ctl.etcd.as_ref().unwrap();
    // As Calico 3.x wrote them, including a policy from before the
    // metadata annotation (its stored name carries the tier prefix).
    let pool = json!({"kind": "IPPool", "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": "calico-pool", "uid": "8f0ba2e4-9a17-4c1e-9d2b-2b9c1f0e4d11", "creationTimestamp": "2023-03-04T05:06:07Z"},
        "spec": {"cidr": "10.244.0.0/16", "ipipMode": "Always", "natOutgoing": true}});
    etcd.etcdctl_ok(&[
        "put",
        &format!("{ROOT}ippools/calico-pool"),
        &pool.to_string(),
    ]);
    let gnp = r#"{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"default.old-policy","uid":"u","creationTimestamp":"2022-01-01T00:00:00Z"},"spec":{"tier":"default","order":50,"selector":"role == \"db\"","types":["Ingress"]}}"#;
    etcd.etcdctl_ok(&[
        "put",
        &format!("{ROOT}globalnetworkpolicies/default.old-policy"),
        gnp,
    ]);

    let wide = ctl.run(&["get", "ippool", "-o", "wide"]).ok().stdout;
    assert_eq!(
        wide,
        "\
NAME          CIDR            NAT    IPIPMODE   VXLANMODE   DISABLED   DISABLEBGPEXPORT   SELECTOR   ASSIGNMENTMODE   
calico-pool   10.244.0.0/16   true   Always     Never       false      false              all()      Automatic        

"
    );
    let gnps = ctl.run(&["get", "gnp", "-o", "wide"]).ok().stdout;
    assert_eq!(
        gnps,
        "NAME         TIER      ORDER   SELECTOR       \nold-policy   default   50      role == \"db\"   \n\n"
    );
    // And updating one keeps its identity.
    ctl.run(&["label", "ippool", "calico-pool", "owner=ops"])
        .ok();
    let v = ctl
        .run(&["get", "ippool", "calico-pool", "-o", "json"])
        .ok()
        .json();
    assert_eq!(v["metadata"]["uid"], "8f0ba2e4-9a17-4c1e-9d2b-2b9c1f0e4d11");
    assert_eq!(v["metadata"]["creationTimestamp"], "2023-03-04T05:06:07Z");
    assert_eq!(v["metadata"]["labels"]["owner"], "ops");
}
