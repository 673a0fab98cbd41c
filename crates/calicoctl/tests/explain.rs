//! `policy explain` over resources in the datastore: the verdict and the
//! tier, policy and rule that decided each side.

mod common;

use common::Ctl;

const CLUSTER: &str = "\
apiVersion: projectcalico.org/v3
kind: Profile
metadata:
  name: kns.default
spec:
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
---
apiVersion: projectcalico.org/v3
kind: Profile
metadata:
  name: kns.prod
spec:
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  namespace: default
  labels:
    app: frontend
spec:
  orchestrator: k8s
  node: node1
  pod: frontend
  endpoint: eth0
  interfaceName: cali1111
  ipNetworks: [192.168.1.2/32]
  profiles: [kns.default]
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  namespace: prod
  labels:
    app: web
spec:
  orchestrator: k8s
  node: node1
  pod: web
  endpoint: eth0
  interfaceName: cali2222
  ipNetworks: [192.168.1.3/32]
  profiles: [kns.prod]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web
  namespace: prod
spec:
  podSelector:
    matchLabels:
      app: web
  ingress:
  - from:
    - namespaceSelector: {}
      podSelector:
        matchLabels:
          app: frontend
    ports:
    - port: 80
";

const SECURITY: &str = "\
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
  name: security.web
spec:
  tier: security
  order: 10
  selector: app == 'web'
  ingress:
  - action: Deny
    protocol: TCP
    destination:
      ports: [22]
  - action: Pass
";

#[test]
fn explains_verdicts_with_tier_policy_and_rule() {
    let ctl = Ctl::embedded();
    let file = ctl.file("cluster.yaml", CLUSTER);
    ctl.run(&["apply", "-f", &file]).ok();

    let out = ctl
        .run(&[
            "policy",
            "explain",
            "--from",
            "default/frontend",
            "--to",
            "prod/web",
            "--port",
            "80/tcp",
        ])
        .ok();
    assert_eq!(
        out.stdout,
        "\
flow: workloadendpoint default/node1-k8s-frontend-eth0 (192.168.1.2) -> workloadendpoint prod/node1-k8s-web-eth0 (192.168.1.3) port 80/tcp
verdict: Allow
egress of workloadendpoint default/node1-k8s-frontend-eth0 (192.168.1.2): Allow
  decided by: profile kns.default, rule 0 (Allow)
ingress of workloadendpoint prod/node1-k8s-web-eth0 (192.168.1.3): Allow
  decided by: tier default, NetworkPolicy prod/knp.default.web, rule 0 (Allow, Normal)
"
    );
    let out = ctl
        .run(&[
            "policy",
            "explain",
            "--from",
            "192.168.1.2",
            "--to",
            "192.168.1.3",
            "--port",
            "81",
        ])
        .ok();
    assert!(out.stdout.contains("\nverdict: Deny\n"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("decided by: end of tier default: no policy decided (default Deny)"),
        "{}",
        out.stdout
    );

    // A tier ahead of default: its Pass shows in the trail, its Deny decides.
    let file = ctl.file("security.yaml", SECURITY);
    ctl.run(&["apply", "-f", &file]).ok();
    let out = ctl
        .run(&[
            "policy",
            "explain",
            "--from",
            "default/frontend",
            "--to",
            "prod/web",
            "--port",
            "80/tcp",
        ])
        .ok();
    assert!(out.stdout.contains("\nverdict: Allow\n"), "{}", out.stdout);
    assert!(
        out.stdout.contains("  tier security, GlobalNetworkPolicy security.web, rule 1: Pass to the next tier (Normal)\n"),
        "{}",
        out.stdout
    );
    let out = ctl
        .run(&[
            "policy",
            "explain",
            "--from",
            "default/frontend",
            "--to",
            "prod/web",
            "--port",
            "22/tcp",
        ])
        .ok();
    assert!(out.stdout.contains("\nverdict: Deny\n"), "{}", out.stdout);
    assert!(
        out.stdout.contains(
            "decided by: tier security, GlobalNetworkPolicy security.web, rule 0 (Deny, Normal)"
        ),
        "{}",
        out.stdout
    );

    // Addresses outside every endpoint have no policy of their own.
    let out = ctl
        .run(&[
            "policy", "explain", "--from", "10.9.9.9", "--to", "prod/web", "--port", "80/tcp",
        ])
        .ok();
    assert!(
        out.stdout
            .starts_with("flow: 10.9.9.9 (not an endpoint) -> "),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("egress of 10.9.9.9 (not an endpoint): Allow\n  decided by: not an endpoint: no policy applies\n"), "{}", out.stdout);

    let err = ctl
        .run(&[
            "policy",
            "explain",
            "--from",
            "default/nope",
            "--to",
            "prod/web",
            "--port",
            "80",
        ])
        .failed();
    assert_eq!(
        err.stderr.trim_end(),
        "--from default/nope: no workload endpoint for pod nope in namespace default"
    );
    let err = ctl
        .run(&[
            "policy",
            "explain",
            "--from",
            "default/frontend",
            "--to",
            "prod/web",
        ])
        .failed();
    assert_eq!(err.stderr.trim_end(), "--port is needed for tcp");
}
