//! A node run by our speaker next to a node run by BIRD configured the way
//! confd configures Calico's node-to-node mesh: the resources go through
//! `config::desired` and `SpeakerHandle::apply`; blocks flow both ways with
//! Calico's LOCAL_PREF; `calicoctl node status` shows the session. Needs
//! root.

mod support;

use std::net::IpAddr;
use std::time::Duration;

use calico_bgp::config::{Inputs, desired};
use calico_model::resource::AnyResource;
use support::*;

const WAIT: Duration = Duration::from_secs(30);

const RESOURCES: &str = "---
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: node-a
spec:
  bgp:
    ipv4Address: 10.99.0.1/24
---
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: node-b
spec:
  bgp:
    ipv4Address: 10.99.0.2/24
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: default-ipv4-ippool
spec:
  cidr: 192.168.0.0/16
";

/// node-b's BIRD, shaped like confd's mesh protocol for node-a.
fn node_b_bird() -> String {
    "router id 10.99.0.2;
protocol device { scan time 1; }
protocol direct { ipv4; }
protocol kernel { ipv4 { export filter { if source = RTS_BGP then accept; reject; }; }; }
protocol static { ipv4; route 192.168.1.0/26 blackhole; }
protocol bgp Mesh_10_99_0_1 {
  local 10.99.0.2 as 64512;
  neighbor 10.99.0.1 port 179 as 64512;
  graceful restart;
  connect delay time 1;
  connect retry time 1;
  multihop;
  ipv4 {
    import filter {
      if (defined(bgp_local_pref)&&(bgp_local_pref > 2147482623)) then
        preference = 200;
      accept;
    };
    export filter {
      if (net ~ 192.168.0.0/16) then { bgp_local_pref = 2147482623; accept; }
      reject;
    };
  };
}
"
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_node_meshes_with_a_calico_bird_node() {
    let lab = Lab::new("bgmesh");
    let bird = Bird::start(&lab, &node_b_bird());
    let ours = lab.speaker(64512);

    let mut nodes = Vec::new();
    let mut pools = Vec::new();
    for doc in calico_model::parse_documents("mesh.yaml", RESOURCES).unwrap() {
        match doc.resource {
            AnyResource::Node(n) => nodes.push(n),
            AnyResource::IpPool(p) => pools.push(p),
            other => panic!("unexpected {:?}", other.kind()),
        }
    }
    let secrets = std::collections::BTreeMap::new();
    let blocks = [net("192.168.0.0/26")];
    let config = desired(&Inputs {
        node_name: "node-a",
        nodes: &nodes,
        configurations: &[],
        peers: &[],
        pools: &pools,
        blocks: &blocks,
        secrets: &secrets,
        router_id: None,
    })
    .unwrap();
    assert_eq!(config.peers.len(), 1);
    assert!(
        config.peers[0].passive,
        "10.99.0.2 sorts after 10.99.0.1: node-b connects"
    );
    ours.handle.apply(config).await.unwrap();

    wait_for("the mesh session", WAIT, async || {
        ours.established(IpAddr::V4(PEER_V4)).await
    })
    .await;
    wait_for("our block at BIRD", WAIT, async || {
        bird.try_birdc("show route 192.168.0.0/26 all")
            .unwrap_or_default()
            .contains("BGP.local_pref: 2147482623")
    })
    .await;
    wait_for("BIRD's block in our kernel", WAIT, async || {
        has_route(&lab.our_kernel_routes(false), "192.168.1.0/26", "10.99.0.2")
    })
    .await;
    wait_for("our block in BIRD's kernel", WAIT, async || {
        has_route(
            &lab.peer_kernel_routes(false),
            "192.168.0.0/26",
            "10.99.0.1",
        )
    })
    .await;

    let report = ours.handle.status().await.unwrap();
    let text = calico_bgp::status::format_peer_tables(&report);
    let row = text
        .lines()
        .find(|l| l.contains("10.99.0.2"))
        .unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(
        cells[1..=3],
        ["10.99.0.2", "node-to-node mesh", "up"],
        "{text}"
    );
    assert_eq!(cells[5], "Established", "{text}");
    assert!(text.contains("No IPv6 peers found."), "{text}");
}
