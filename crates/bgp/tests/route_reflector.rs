//! Our speaker as a route reflector (RFC 4456) for two BIRD 2 clients in
//! namespaces of their own, as a Calico node with a
//! `routeReflectorClusterID` serves the other nodes: a route from one
//! client reaches the other with ORIGINATOR_ID and CLUSTER_LIST set and
//! its next hop untouched; our own routes reach both. Needs root.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use calico_bgp::speaker::Origination;
use support::*;

const WAIT: Duration = Duration::from_secs(30);
const CLUSTER: Ipv4Addr = Ipv4Addr::new(244, 0, 0, 1);

fn client_config(me: &str, route: &str) -> String {
    format!(
        "router id {me};
protocol device {{ scan time 1; }}
protocol static s4 {{ ipv4; route {route} blackhole; }}
protocol bgp reflector {{
  local {me} as 64512;
  neighbor {} as 64512;
  connect delay time 1;
  connect retry time 1;
  ipv4 {{ import all; export all; next hop self; }};
}}
",
        // Our address on the client's link.
        me.rsplit_once('.')
            .map(|(net, _)| format!("{net}.1"))
            .unwrap()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_reflect_routes_between_bird_clients() {
    let lab = Lab::new("bgrr");
    let c1_ns = lab.extra_peer("bgrrc1", 1);
    let c2_ns = lab.extra_peer("bgrrc2", 2);
    let c1 = Bird::start_in_ns(
        &c1_ns,
        &client_config("10.99.1.2", "172.24.1.0/24"),
        scratch_dir("rr-c1"),
    );
    let c2 = Bird::start_in_ns(
        &c2_ns,
        &client_config("10.99.2.2", "172.24.2.0/24"),
        scratch_dir("rr-c2"),
    );

    let sink = calico_bgp::sink::NetlinkSink::open(Some(&lab.us.path())).unwrap();
    let config = calico_bgp::driver::DriverConfig {
        speaker: calico_bgp::speaker::SpeakerConfig {
            local_as: 64512,
            router_id: OUR_V4,
            cluster_id: Some(CLUSTER),
            address_v4: Some(OUR_V4),
            address_v6: None,
        },
        listen: vec![std::net::SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            179,
        )],
        netns: Some(lab.us.path()),
    };
    let (driver, handle) = calico_bgp::driver::Driver::new(config, Box::new(sink)).unwrap();
    let task = tokio::spawn(driver.run());
    for client in ["10.99.1.2", "10.99.2.2"] {
        let mut p = peer_config(client.parse().unwrap(), 64512);
        p.rr_client = true;
        p.passive = true;
        handle.set_peer(p).await.unwrap();
    }
    let ours = Ours { handle, task };
    for client in ["10.99.1.2", "10.99.2.2"] {
        wait_for("the client sessions", WAIT, async || {
            ours.established(client.parse().unwrap()).await
        })
        .await;
    }
    ours.handle
        .originate(Origination::new(net("192.168.200.0/26")))
        .await
        .unwrap();

    wait_for("c1's route at c2", WAIT, async || {
        c2.try_birdc("show route 172.24.1.0/24 all")
            .unwrap_or_default()
            .contains("BGP.cluster_list")
    })
    .await;
    let reflected = c2.birdc("show route 172.24.1.0/24 all");
    assert!(
        reflected.contains("BGP.originator_id: 10.99.1.2"),
        "{reflected}"
    );
    assert!(
        reflected.contains("BGP.cluster_list: 244.0.0.1"),
        "{reflected}"
    );
    assert!(
        reflected.contains("BGP.next_hop: 10.99.1.2"),
        "next hop kept: {reflected}"
    );
    wait_for("c2's route at c1", WAIT, async || {
        c1.try_birdc("show route 172.24.2.0/24 all")
            .unwrap_or_default()
            .contains("BGP.originator_id: 10.99.2.2")
    })
    .await;
    // Our own block: at both, with our next hop and no reflection attributes.
    for client in [&c1, &c2] {
        wait_for("our block at a client", WAIT, async || {
            client
                .try_birdc("show route 192.168.200.0/26 all")
                .unwrap_or_default()
                .contains("BGP.local_pref")
        })
        .await;
        let ours_at = client.birdc("show route 192.168.200.0/26 all");
        assert!(!ours_at.contains("originator_id"), "{ours_at}");
    }
    // The reflector installs both clients' routes via the clients.
    wait_for("client routes in our kernel", WAIT, async || {
        let routes = lab.our_kernel_routes(false);
        has_route(&routes, "172.24.1.0/24", "10.99.1.2")
            && has_route(&routes, "172.24.2.0/24", "10.99.2.2")
    })
    .await;
}
