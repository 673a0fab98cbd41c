#!/usr/bin/env bash
# The main job: sets everything up, builds the release binaries, then runs
# a real calicoctl flow against an embedded datastore in a temporary
# directory, printing each step: IP pools, a tier, a GlobalNetworkPolicy
# and a Kubernetes NetworkPolicy applied and read back in every format, a
# selector tested, a Kubernetes policy converted, and policy explained
# between two workloads. Exits non-zero on any failure; removes its
# temporary directory whatever happens.
#
# (Stands in until `calico-lab` runs a multi-node cluster out of network
# namespaces.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

echo "== building release binaries"
cargo build --release --locked -p calicoctl
CALICOCTL="$PWD/target/release/calicoctl"

LAB="$(mktemp -d -t calico-lab.XXXXXX)"
trap 'rm -rf "$LAB"' EXIT
cd "$LAB"

# An embedded datastore in the lab directory, named by a calicoctl config
# file as an operator would.
cat > calicoctl.cfg <<EOF
apiVersion: projectcalico.org/v3
kind: CalicoAPIConfig
metadata: {}
spec:
  datastoreType: embedded
  embeddedDatastorePath: $LAB/calico.db
EOF

step() {
  echo
  echo "==> calicoctl $*"
  "$CALICOCTL" "$@" --config "$LAB/calicoctl.cfg"
}

cat > pools.yaml <<'EOF'
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: default-ipv4-ippool
spec:
  cidr: 192.168.0.0/16
  blockSize: 26
  ipipMode: Always
  natOutgoing: true
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: edge-pool
spec:
  cidr: 10.20.0.0/16
  vxlanMode: CrossSubnet
  natOutgoing: true
  nodeSelector: zone == 'edge'
EOF

cat > policy.yaml <<'EOF'
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
  name: security.block-ssh-to-web
spec:
  tier: security
  order: 10
  selector: app == 'web'
  types: [Ingress]
  ingress:
  - action: Deny
    protocol: TCP
    destination:
      ports: [22]
  - action: Pass
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-frontend
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
EOF

# Two workloads and their namespaces' profiles, as the CNI plugin and
# kube-controllers would write them.
cat > workloads.yaml <<'EOF'
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
  node: lab-node
  pod: frontend
  endpoint: eth0
  interfaceName: cali0a1b2c3d4e5
  ipNetworks: [192.168.0.2/32]
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
  node: lab-node
  pod: web
  endpoint: eth0
  interfaceName: cali5f6e7d8c9b0
  ipNetworks: [192.168.0.3/32]
  profiles: [kns.prod]
EOF

step create -f pools.yaml
step get ippool
step get ippool -o wide
step get ippool edge-pool -o yaml
step apply -f policy.yaml
step get tier
step get globalnetworkpolicy -o wide
step get networkpolicy -A -o wide
step get globalnetworkpolicy security.block-ssh-to-web -o yaml
step apply -f workloads.yaml
step get workloadendpoint -A -o wide

echo
echo "==> calicoctl selector match \"app == 'web' && zone in {'a','b'}\" --labels app=web,zone=a"
"$CALICOCTL" selector match "app == 'web' && zone in {'a','b'}" --labels app=web,zone=a
echo "==> calicoctl selector match \"app == 'web'\" --labels app=db (expect no match)"
if "$CALICOCTL" selector match "app == 'web'" --labels app=db; then
  echo "lab: a selector matched labels it should not" >&2
  exit 1
fi
echo "==> calicoctl selector check \"app=='web'&&has(zone)\""
"$CALICOCTL" selector check "app=='web'&&has(zone)"

echo
echo "==> calicoctl convert -f knp.yaml (the Kubernetes NetworkPolicy of policy.yaml)"
awk 'BEGIN{RS="---\n"} /networking.k8s.io/ {printf "%s", $0}' policy.yaml > knp.yaml
"$CALICOCTL" convert -f knp.yaml

step policy explain --from default/frontend --to prod/web --port 80/tcp
step policy explain --from default/frontend --to prod/web --port 22/tcp

echo
echo "lab: all steps succeeded"
