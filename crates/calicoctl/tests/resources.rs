//! Round trips through the real binary, on an embedded datastore and on a
//! real etcd: create/apply/replace/get (every output format)/patch/label/
//! delete for several kinds, and what is printed for each.

mod common;

use common::Ctl;
use serde_json::Value;

const POOLS: &str = "\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: default-ipv4-ippool
spec:
  cidr: 192.168.0.0/16
  ipipMode: Always
  natOutgoing: true
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool2
  labels:
    zone: a
spec:
  cidr: 10.10.0.0/16
  vxlanMode: CrossSubnet
  nodeSelector: zone == 'a'
";

const POLICY: &str = "\
apiVersion: projectcalico.org/v3
kind: Tier
metadata:
  name: security
spec:
  order: 100
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: security.allow-dns
spec:
  tier: security
  order: 10
  selector: all()
  types: [Egress]
  egress:
  - action: Allow
    protocol: UDP
    destination:
      ports: [53]
";

fn pools_round_trip(ctl: &Ctl) {
    let file = ctl.file("pools.yaml", POOLS);
    let out = ctl.run(&["create", "-f", &file]).ok();
    assert_eq!(out.stdout, "Successfully created 2 'IPPool' resource(s)\n");

    let ps = ctl.run(&["get", "ippool"]).ok().stdout;
    assert_eq!(
        ps,
        "\
NAME                  CIDR             SELECTOR      
default-ipv4-ippool   192.168.0.0/16   all()         
pool2                 10.10.0.0/16     zone == 'a'   

"
    );
    let wide = ctl.run(&["get", "ippools", "-o", "wide"]).ok().stdout;
    assert_eq!(
        wide,
        "\
NAME                  CIDR             NAT     IPIPMODE   VXLANMODE     DISABLED   DISABLEBGPEXPORT   SELECTOR      ASSIGNMENTMODE   
default-ipv4-ippool   192.168.0.0/16   true    Always     Never         false      false              all()         Automatic        
pool2                 10.10.0.0/16     false   Never      CrossSubnet   false      false              zone == 'a'   Automatic        

"
    );
    let custom = ctl
        .run(&["get", "ipp", "pool2", "-o", "custom-columns=NAME,VXLANMODE"])
        .ok()
        .stdout;
    assert_eq!(custom, "NAME    VXLANMODE     \npool2   CrossSubnet   \n\n");

    // JSON: Calico's field order, no trailing newline.
    let json = ctl.run(&["get", "ippool", "pool2", "-o", "json"]).ok();
    assert!(json.stdout.starts_with("{\n  \"kind\": \"IPPool\",\n  \"apiVersion\": \"projectcalico.org/v3\",\n  \"metadata\": {\n    \"name\": \"pool2\",\n"), "{}", json.stdout);
    assert!(json.stdout.ends_with('}'), "{}", json.stdout);
    let v = json.json();
    let meta = &v["metadata"];
    let (uid, rv, ts) = (
        meta["uid"].as_str().unwrap(),
        meta["resourceVersion"].as_str().unwrap(),
        meta["creationTimestamp"].as_str().unwrap(),
    );
    assert_eq!(uid.len(), 36);
    assert!(rv.parse::<i64>().unwrap() > 0);

    // YAML: keys sorted, as calicoctl prints it.
    let yaml = ctl
        .run(&["get", "ippool", "pool2", "-o", "yaml"])
        .ok()
        .stdout;
    assert_eq!(
        yaml,
        format!(
            "\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  creationTimestamp: \"{ts}\"
  labels:
    zone: a
  name: pool2
  resourceVersion: \"{rv}\"
  uid: {uid}
spec:
  allowedUses:
  - Workload
  - Tunnel
  assignmentMode: Automatic
  blockSize: 26
  cidr: 10.10.0.0/16
  ipipMode: Never
  nodeSelector: zone == 'a'
  vxlanMode: CrossSubnet
"
        )
    );
    // A listing is a <Kind>List carrying the datastore revision.
    let list = ctl.run(&["get", "ippool", "-o", "yaml"]).ok().stdout;
    assert!(list.starts_with("apiVersion: projectcalico.org/v3\nitems:\n- apiVersion: projectcalico.org/v3\n  kind: IPPool\n"), "{list}");
    assert!(
        list.contains("\nkind: IPPoolList\nmetadata:\n  resourceVersion: \""),
        "{list}"
    );
    let list = ctl.run(&["get", "ippool", "-o", "json"]).ok().json();
    assert_eq!(list["kind"], "IPPoolList");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    // Several names: each printed, as a YAML sequence.
    let two = ctl
        .run(&[
            "get",
            "ippool",
            "pool2",
            "default-ipv4-ippool",
            "-o",
            "yaml",
        ])
        .ok()
        .stdout;
    assert!(
        two.starts_with("- apiVersion: projectcalico.org/v3\n"),
        "{two}"
    );
    // The selector filters a listing.
    let zone_a = ctl
        .run(&["get", "ippool", "--selector", "zone == 'a'", "-o", "json"])
        .ok()
        .json();
    let names: Vec<&str> = zone_a["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pool2"]);

    // Patch: a merge patch, written only over what was read.
    let out = ctl
        .run(&[
            "patch",
            "ippool",
            "pool2",
            "-p",
            r#"{"spec":{"natOutgoing":true,"disabled":true}}"#,
        ])
        .ok();
    assert_eq!(out.stdout, "Successfully patched 1 'IPPool' resource\n");
    let v = ctl
        .run(&["get", "ippool", "pool2", "-o", "json"])
        .ok()
        .json();
    assert_eq!(v["spec"]["natOutgoing"], true);
    assert_eq!(v["spec"]["disabled"], true);
    assert_eq!(v["metadata"]["uid"], uid);
    assert_ne!(v["metadata"]["resourceVersion"], rv);
    let err = ctl
        .run(&[
            "patch",
            "ippool",
            "pool2",
            "-p",
            r#"{"spec":{"cidr":"10.11.0.0/16"}}"#,
        ])
        .failed();
    assert!(
        err.stderr.contains("IPPool CIDR cannot be modified"),
        "{}",
        err.stderr
    );

    // Labels.
    let out = ctl.run(&["label", "ippool", "pool2", "env=prod"]).ok();
    assert_eq!(out.stdout, "Successfully set label env on ippool pool2\n");
    let err = ctl.run(&["label", "ippool", "pool2", "env=dev"]).failed();
    assert_eq!(
        err.stderr.trim_end(),
        "failed to update label of ippool pool2, key env is already present. please use '--overwrite' to set a new value"
    );
    let out = ctl
        .run(&["label", "ippool", "pool2", "env=dev", "--overwrite"])
        .ok();
    assert_eq!(
        out.stdout,
        "Successfully updated label env on ippool pool2\n"
    );
    let v = ctl
        .run(&["get", "ippool", "pool2", "-o", "json"])
        .ok()
        .json();
    assert_eq!(
        v["metadata"]["labels"],
        serde_json::json!({"env": "dev", "zone": "a"})
    );
    let out = ctl
        .run(&["label", "ippool", "pool2", "env", "--remove"])
        .ok();
    assert_eq!(
        out.stdout,
        "Successfully removed label env from ippool pool2\n"
    );
    let err = ctl
        .run(&["label", "ippool", "pool2", "env", "--remove"])
        .failed();
    assert_eq!(
        err.stderr.trim_end(),
        "cannot remove label of ippool pool2, key env does not exist"
    );

    // Delete by name, then what is left.
    let out = ctl.run(&["delete", "ippool", "pool2"]).ok();
    assert_eq!(out.stdout, "Successfully deleted 1 'IPPool' resource(s)\n");
    let err = ctl.run(&["delete", "ippool", "pool2"]).failed();
    assert_eq!(
        err.stderr.trim_end(),
        "Failed to delete 'IPPool' resource: resource does not exist: IPPool(pool2)"
    );
    let out = ctl
        .run(&["delete", "ippool", "pool2", "--skip-not-exists"])
        .ok();
    assert_eq!(out.stdout, "Successfully deleted 1 'IPPool' resource(s)\n");
    let err = ctl.run(&["get", "ippool", "pool2"]).failed();
    assert_eq!(
        err.stderr.trim_end(),
        "resource does not exist: IPPool(pool2)"
    );
    // Deleting by file.
    let out = ctl.run(&["delete", "-f", &file, "--skip-not-exists"]).ok();
    assert_eq!(out.stdout, "Successfully deleted 2 'IPPool' resource(s)\n");
    assert_eq!(
        ctl.run(&["get", "ippool"]).ok().stdout,
        "NAME   CIDR   SELECTOR   \n\n"
    );
}

fn apply_replace_round_trip(ctl: &Ctl) {
    let file = ctl.file("policy.yaml", POLICY);
    let out = ctl.run(&["apply", "-f", &file]).ok();
    assert_eq!(out.stdout, "Successfully applied 2 resource(s)\n");
    // Applying again updates in place.
    let out = ctl.run(&["apply", "-f", &file]).ok();
    assert_eq!(out.stdout, "Successfully applied 2 resource(s)\n");

    let tiers = ctl.run(&["get", "tiers"]).ok().stdout;
    assert_eq!(
        tiers,
        "\
NAME            ORDER   
default         1e+06   
kube-admin      1000    
kube-baseline   1e+07   
security        100     

"
    );
    let gnp = ctl.run(&["get", "gnp", "-o", "wide"]).ok().stdout;
    assert_eq!(
        gnp,
        "NAME                 TIER       ORDER   SELECTOR   \nsecurity.allow-dns   security   10      all()      \n\n"
    );
    let v = ctl
        .run(&[
            "get",
            "globalnetworkpolicy",
            "security.allow-dns",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(
        v["metadata"]["labels"]["projectcalico.org/tier"],
        "security"
    );
    assert_eq!(
        v["spec"]["egress"][0]["destination"]["ports"],
        serde_json::json!([53])
    );
    let rv = v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();

    // replace: an update; with a stale resourceVersion it is refused.
    let replaced = POLICY.replace("order: 10\n", "order: 20\n");
    let file2 = ctl.file("policy2.yaml", &replaced);
    let out = ctl.run(&["replace", "-f", &file2]).ok();
    assert_eq!(out.stdout, "Successfully replaced 2 resource(s)\n");
    let gnp = ctl
        .run(&["get", "gnp", "security.allow-dns", "-o", "wide"])
        .ok()
        .stdout;
    assert!(gnp.contains("security   20 "), "{gnp}");
    let stale = replaced.replace(
        "  name: security.allow-dns\n",
        &format!("  name: security.allow-dns\n  resourceVersion: \"{rv}\"\n"),
    );
    let stale = stale.split("---\n").nth(1).unwrap().to_owned();
    let file3 = ctl.file("stale.yaml", &stale);
    let err = ctl.run(&["replace", "-f", &file3]).failed();
    assert!(
        err.stderr.starts_with(&format!(
            "failed to replace 'GlobalNetworkPolicy' resource: update conflict: GlobalNetworkPolicy(security.allow-dns): resource version '{rv}' is out of date"
        )),
        "{}",
        err.stderr
    );
    // replace of something missing.
    let missing = ctl.file(
        "missing.yaml",
        "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata:\n  name: nope\n",
    );
    let err = ctl.run(&["replace", "-f", &missing]).failed();
    assert_eq!(
        err.stderr.trim_end(),
        "failed to replace 'Tier' resource: resource does not exist: Tier(nope)"
    );

    // A non-empty tier cannot go; the built-in ones never.
    let err = ctl.run(&["delete", "tier", "security"]).failed();
    assert_eq!(
        err.stderr.trim_end(),
        "Failed to delete 'Tier' resource: operation delete is not supported on Tier(security): Cannot delete a non-empty tier"
    );
    // Deleting the file's resources in order: the tier first still holds
    // the policy, so that delete fails while the policy's succeeds.
    let err = ctl.run(&["delete", "-f", &file]).failed();
    assert_eq!(err.stdout, "Successfully deleted 1 resource(s)\n");
    assert_eq!(
        err.stderr.trim_end(),
        "Failed to delete resource: operation delete is not supported on Tier(security): Cannot delete a non-empty tier"
    );
    let out = ctl.run(&["delete", "-f", &file, "--skip-not-exists"]).ok();
    assert_eq!(out.stdout, "Successfully deleted 2 resource(s)\n");
    let err = ctl.run(&["delete", "tier", "default"]).failed();
    assert!(
        err.stderr.contains("Cannot delete default tier"),
        "{}",
        err.stderr
    );
}

fn namespaced_and_kubernetes_policies(ctl: &Ctl) {
    let np = "\
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: allow-web
spec:
  selector: app == 'web'
  ingress:
  - action: Allow
    protocol: TCP
    destination:
      ports: [80]
";
    let file = ctl.file("np.yaml", np);
    ctl.run(&["create", "-f", &file, "-n", "prod"]).ok();
    ctl.run(&["create", "-f", &file]).ok(); // in "default"
    let knp = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: db
  namespace: prod
spec:
  podSelector:
    matchLabels:
      app: db
  ingress:
  - from:
    - podSelector:
        matchLabels:
          app: web
    ports:
    - port: 5432
";
    let kfile = ctl.file("knp.yaml", knp);
    let out = ctl.run(&["apply", "-f", &kfile]).ok();
    assert_eq!(
        out.stdout,
        "Successfully applied 1 'NetworkPolicy' resource(s)\n"
    );

    assert_eq!(
        ctl.run(&["get", "networkpolicy"]).ok().stdout,
        "NAME        TIER      \nallow-web   default   \n\n"
    );
    assert_eq!(
        ctl.run(&["get", "np", "-n", "prod"]).ok().stdout,
        "NAMESPACE   NAME             TIER      \nprod        allow-web        default   \nprod        knp.default.db   default   \n\n"
    );
    assert_eq!(
        ctl.run(&["get", "policy", "-A", "-o", "wide"]).ok().stdout,
        "\
NAMESPACE   NAME             TIER      ORDER   SELECTOR                                                 
default     allow-web        default   <nil>   app == 'web'                                             
prod        allow-web        default   <nil>   app == 'web'                                             
prod        knp.default.db   default   1000    projectcalico.org/orchestrator == 'k8s' && app == 'db'   

"
    );
    let v = ctl
        .run(&[
            "get",
            "networkpolicy",
            "knp.default.db",
            "-n",
            "prod",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(
        v["spec"]["ingress"][0]["source"]["selector"],
        "projectcalico.org/orchestrator == 'k8s' && app == 'web'"
    );
    assert_eq!(
        v["spec"]["ingress"][0]["destination"]["ports"],
        serde_json::json!([5432])
    );
    // calicoctl refuses to manage the converted policy as a Calico one...
    let err = ctl
        .run(&["delete", "networkpolicy", "knp.default.db", "-n", "prod"])
        .failed();
    assert!(
        err.stderr
            .contains("kubernetes network policies must be managed through the kubernetes API"),
        "{}",
        err.stderr
    );
    let err = ctl
        .run(&["label", "np", "knp.default.db", "-n", "prod", "a=b"])
        .failed();
    assert!(
        err.stderr.contains(
            "operation apply or replace is not supported on NetworkPolicy(prod/knp.default.db)"
        ),
        "{}",
        err.stderr
    );
    // ...but deletes it through its Kubernetes manifest.
    ctl.run(&["delete", "-f", &kfile]).ok();
    let err = ctl
        .run(&["get", "networkpolicy", "knp.default.db", "-n", "prod"])
        .failed();
    assert_eq!(
        err.stderr.trim_end(),
        "resource does not exist: NetworkPolicy(prod/knp.default.db)"
    );
    // -A with a name is refused, as calicoctl does.
    let err = ctl.run(&["get", "np", "allow-web", "-A"]).failed();
    assert_eq!(
        err.stderr.trim_end(),
        "cannot use --all-namespace flag for getting a single resource"
    );
    let err = ctl.run(&["get", "ippool", "-n", "x"]).failed();
    assert_eq!(err.stderr.trim_end(), "IPPool is not namespaced");
}

fn more_kinds(ctl: &Ctl) {
    let docs = "\
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata:
  name: external
  labels:
    role: external
spec:
  nets: [1.2.3.0/24, 5.6.7.8/32]
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata:
  name: node1-eth0
  labels:
    host: node1
spec:
  node: node1
  interfaceName: eth0
  expectedIPs: [10.0.0.1]
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor
spec:
  peerIP: 10.0.0.254
  asNumber: 64567
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  asNumber: 63400
  nodeToNodeMeshEnabled: false
---
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: node1
spec:
  bgp:
    ipv4Address: 10.0.0.1/24
";
    let file = ctl.file("kinds.yaml", docs);
    let out = ctl.run(&["create", "-f", &file]).ok();
    assert_eq!(out.stdout, "Successfully created 5 resource(s)\n");
    assert_eq!(
        ctl.run(&["get", "globalnetworkset", "-o", "wide"])
            .ok()
            .stdout,
        "NAME       NETS                    \nexternal   1.2.3.0/24,5.6.7.8/32   \n\n"
    );
    assert_eq!(
        ctl.run(&["get", "hep", "-o", "wide"]).ok().stdout,
        "NAME         NODE    INTERFACE   IPS        PROFILES   \nnode1-eth0   node1   eth0        10.0.0.1              \n\n"
    );
    assert_eq!(
        ctl.run(&["get", "bgppeers"]).ok().stdout,
        "NAME   PEERIP       NODE       ASN     \ntor    10.0.0.254   (global)   64567   \n\n"
    );
    assert_eq!(
        ctl.run(&["get", "bgpconfig"]).ok().stdout,
        "NAME      LOGSEVERITY   MESHENABLED   ASNUMBER   \ndefault   Info          false         63400      \n\n"
    );
    assert_eq!(
        ctl.run(&["get", "nodes", "-o", "wide"]).ok().stdout,
        "NAME    ASN       IPV4          IPV6   \nnode1   (63400)   10.0.0.1/24          \n\n"
    );
    // ClusterInformation is calico-node's to write.
    let info = ctl
        .run(&["get", "clusterinformation", "default", "-o", "json"])
        .ok()
        .json();
    assert_eq!(info["spec"]["datastoreReady"], true);
    let file = ctl.file(
        "info.yaml",
        "apiVersion: projectcalico.org/v3\nkind: ClusterInformation\nmetadata:\n  name: default\nspec: {}\n",
    );
    let err = ctl.run(&["apply", "-f", &file]).failed();
    assert_eq!(
        err.stderr.trim_end(),
        "failed to apply 'ClusterInformation' resource: [operation apply is not supported on ClusterInformation: resource is readonly]"
    );
    let err = ctl
        .run(&[
            "patch",
            "clusterinfo",
            "default",
            "-p",
            r#"{"spec":{"clusterType":"x"}}"#,
        ])
        .failed();
    assert_eq!(
        err.stderr.trim_end(),
        "hit error: updating existing resource: operation apply or replace is not supported on ClusterInformation"
    );
}

fn stdin_and_skip_exists(ctl: &Ctl) {
    let tier = "{\"apiVersion\":\"projectcalico.org/v3\",\"kind\":\"Tier\",\"metadata\":{\"name\":\"t1\"},\"spec\":{\"order\":5}}";
    let out = ctl.run_with_stdin(&["create", "-f", "-"], Some(tier)).ok();
    assert_eq!(out.stdout, "Successfully created 1 'Tier' resource(s)\n");
    let err = ctl
        .run_with_stdin(&["create", "-f", "-"], Some(tier))
        .failed();
    assert_eq!(
        err.stderr.trim_end(),
        "failed to create 'Tier' resource: [resource already exists: Tier(t1)]"
    );
    let out = ctl
        .run_with_stdin(&["create", "-f", "-", "--skip-exists"], Some(tier))
        .ok();
    assert_eq!(out.stdout, "Successfully created 1 'Tier' resource(s)\n");
    // A mix of new and existing: Calico's partial success.
    let two = format!("{tier}\n{}", tier.replace("t1", "t2"));
    let err = ctl
        .run_with_stdin(&["create", "-f", "-"], Some(&two))
        .failed();
    assert_eq!(
        err.stdout,
        "Partial success: created the first 1 out of 2 'Tier' resources:\n"
    );
    assert_eq!(
        err.stderr.trim_end(),
        "hit error: [resource already exists: Tier(t1)]"
    );
    let t2: Value = ctl.run(&["get", "tier", "t2", "-o", "json"]).ok().json();
    assert_eq!(t2["spec"]["defaultAction"], "Deny");
}

macro_rules! on_both_engines {
    ($($test:ident),* $(,)?) => {
        mod embedded {
            $(#[test] fn $test() { super::$test(&super::Ctl::embedded()); })*
        }
        mod etcd {
            $(#[test] fn $test() { super::$test(&super::Ctl::etcd()); })*
        }
    };
}

on_both_engines!(
    pools_round_trip,
    apply_replace_round_trip,
    namespaced_and_kubernetes_policies,
    more_kinds,
    stdin_and_skip_exists,
);
