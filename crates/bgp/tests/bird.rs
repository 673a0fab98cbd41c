//! Our speaker against BIRD 2 (what Calico runs), eBGP across a veth pair:
//! the session comes up, routes flow both ways and reach both kernels,
//! withdrawals propagate, and a graceful restart of BIRD keeps its routes
//! in our kernel until it is back; with a password (IPv4 and IPv6) only
//! the right one brings the session up. Needs root.

mod support;

use std::net::IpAddr;
use std::time::Duration;

use calico_bgp::speaker::Origination;
use calico_bgp::wire::LargeCommunity;
use support::*;

const WAIT: Duration = Duration::from_secs(30);

fn bird_config(statics: &[&str]) -> String {
    let routes: String = statics
        .iter()
        .map(|r| format!("  route {r} blackhole;\n"))
        .collect();
    format!(
        "router id {PEER_V4};
protocol device {{ scan time 1; }}
protocol kernel {{ ipv4 {{ export filter {{ if proto = \"calico\" then accept; reject; }}; }}; }}
protocol static s4 {{
  ipv4;
{routes}}}
protocol bgp calico {{
  local {PEER_V4} as 64513;
  neighbor {OUR_V4} as 64512;
  graceful restart;
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 5;
  ipv4 {{ import all; export all; }};
}}
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bird_exchanges_routes_and_keeps_them_through_a_graceful_restart() {
    let lab = Lab::new("bgbird");
    let mut bird = Bird::start(&lab, &bird_config(&["172.20.1.0/24", "172.20.2.0/24"]));
    let ours = lab.speaker(64512);
    ours.handle
        .set_peer(peer_config(IpAddr::V4(PEER_V4), 64513))
        .await
        .unwrap();
    wait_for("the session with BIRD", WAIT, async || {
        ours.established(IpAddr::V4(PEER_V4)).await
    })
    .await;
    assert!(bird.birdc("show protocols calico").contains("Established"));

    // Ours to BIRD, with Calico's communities.
    let mut block = Origination::new(net("192.168.100.0/26"));
    block.communities = vec![(64512 << 16) | 100];
    block.large_communities = vec![LargeCommunity {
        global_admin: 64512,
        local_1: 1,
        local_2: 2,
    }];
    ours.handle.originate(block).await.unwrap();
    wait_for("BIRD to learn our block", WAIT, async || {
        bird.birdc("show route 192.168.100.0/26 all")
            .contains("via 10.99.0.1")
    })
    .await;
    let detail = bird.birdc("show route 192.168.100.0/26 all");
    assert!(detail.contains("BGP.as_path: 64512"), "{detail}");
    assert!(detail.contains("(64512,100)"), "{detail}");
    assert!(detail.contains("(64512, 1, 2)"), "{detail}");
    wait_for("our block in BIRD's kernel", WAIT, async || {
        has_route(
            &lab.peer_kernel_routes(false),
            "192.168.100.0/26",
            "10.99.0.1",
        )
    })
    .await;

    // BIRD's to our kernel.
    wait_for("BIRD's routes in our kernel", WAIT, async || {
        let routes = lab.our_kernel_routes(false);
        has_route(&routes, "172.20.1.0/24", "10.99.0.2")
            && has_route(&routes, "172.20.2.0/24", "10.99.0.2")
    })
    .await;

    // Withdrawals, both ways.
    ours.handle.withdraw(net("192.168.100.0/26")).await.unwrap();
    wait_for("BIRD to drop our block", WAIT, async || {
        !bird
            .try_birdc("show route 192.168.100.0/26")
            .unwrap_or_default()
            .contains("192.168.100.0/26")
    })
    .await;
    bird.birdc("disable s4");
    wait_for("BIRD's routes to leave our kernel", WAIT, async || {
        lab.our_kernel_routes(false).trim().is_empty()
    })
    .await;
    bird.birdc("enable s4");
    wait_for("BIRD's routes to come back", WAIT, async || {
        lab.our_kernel_routes(false).contains("172.20.2.0/24")
    })
    .await;

    // Graceful restart: BIRD goes away without a NOTIFICATION and comes
    // back without 172.20.2.0/24.
    bird.birdc("graceful restart");
    bird.daemon.wait_exit(Duration::from_secs(10));
    wait_for("our side to notice", WAIT, async || {
        !ours.established(IpAddr::V4(PEER_V4)).await
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = lab.our_kernel_routes(false);
    assert!(
        during.contains("172.20.1.0/24") && during.contains("172.20.2.0/24"),
        "routes kept while BIRD restarts: {during}"
    );
    let dir = std::mem::replace(&mut bird.dir, scratch_dir("bird-old"));
    drop(bird);
    let bird = Bird::start_in(&lab, &bird_config(&["172.20.1.0/24"]), dir);
    wait_for("the session again", WAIT, async || {
        ours.established(IpAddr::V4(PEER_V4)).await
    })
    .await;
    wait_for("the route BIRD no longer has to go", WAIT, async || {
        !lab.our_kernel_routes(false).contains("172.20.2.0/24")
    })
    .await;
    wait_for("the route BIRD still has to stay", WAIT, async || {
        has_route(&lab.our_kernel_routes(false), "172.20.1.0/24", "10.99.0.2")
    })
    .await;
    assert!(bird.birdc("show protocols calico").contains("Established"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bird_ipv6_session_carries_ipv6_routes() {
    let lab = Lab::new("bgbird6");
    let config = format!(
        "router id {PEER_V4};
protocol device {{ scan time 1; }}
protocol static s6 {{ ipv6; route fd00:20::/64 blackhole; }}
protocol bgp calico {{
  local {PEER_V6} as 64512;
  neighbor {OUR_V6} as 64512;
  connect delay time 1;
  connect retry time 1;
  ipv6 {{ import all; export all; next hop self; }};
}}
"
    );
    let bird = Bird::start(&lab, &config);
    let ours = lab.speaker(64512);
    ours.handle
        .set_peer(peer_config(IpAddr::V6(PEER_V6), 64512))
        .await
        .unwrap();
    wait_for("the IPv6 session", WAIT, async || {
        ours.established(IpAddr::V6(PEER_V6)).await
    })
    .await;
    ours.handle
        .originate(Origination::new(net("fd00:aa::/122")))
        .await
        .unwrap();
    wait_for("BIRD to learn our IPv6 block", WAIT, async || {
        bird.birdc("show route fd00:aa::/122")
            .contains("fd00:99::1")
    })
    .await;
    wait_for("BIRD's IPv6 route in our kernel", WAIT, async || {
        has_route(&lab.our_kernel_routes(true), "fd00:20::/64", "fd00:99::2")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bird_with_a_password_needs_the_same_one() {
    let lab = Lab::new("bgbirdpw");
    let config = bird_config(&["172.20.3.0/24"]).replace(
        "  graceful restart;\n",
        &format!("  graceful restart;\n  password \"{PASSWORD}\";\n"),
    );
    let bird = Bird::start(&lab, &config);
    let ours = lab.speaker(64512);
    wrong_then_right_password(
        &ours,
        peer_config(IpAddr::V4(PEER_V4), 64513),
        Duration::from_secs(5),
    )
    .await;
    assert!(bird.birdc("show protocols calico").contains("Established"));
    ours.handle
        .originate(Origination::new(net("192.168.103.0/26")))
        .await
        .unwrap();
    wait_for("BIRD to learn our block", WAIT, async || {
        bird.birdc("show route 192.168.103.0/26")
            .contains("via 10.99.0.1")
    })
    .await;
    wait_for("BIRD's route in our kernel", WAIT, async || {
        has_route(&lab.our_kernel_routes(false), "172.20.3.0/24", "10.99.0.2")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bird_ipv6_session_with_a_password() {
    let lab = Lab::new("bgbird6pw");
    let config = format!(
        "router id {PEER_V4};
protocol device {{ scan time 1; }}
protocol static s6 {{ ipv6; route fd00:21::/64 blackhole; }}
protocol bgp calico {{
  local {PEER_V6} as 64512;
  neighbor {OUR_V6} as 64512;
  password \"{PASSWORD}\";
  connect delay time 1;
  connect retry time 1;
  ipv6 {{ import all; export all; next hop self; }};
}}
"
    );
    let _bird = Bird::start(&lab, &config);
    let ours = lab.speaker(64512);
    wrong_then_right_password(
        &ours,
        peer_config(IpAddr::V6(PEER_V6), 64512),
        Duration::from_secs(5),
    )
    .await;
    wait_for("BIRD's IPv6 route in our kernel", WAIT, async || {
        has_route(&lab.our_kernel_routes(true), "fd00:21::/64", "fd00:99::2")
    })
    .await;
}
