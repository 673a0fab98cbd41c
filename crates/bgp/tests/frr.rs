//! Our speaker against FRR 8 (zebra and bgpd), eBGP across a veth pair:
//! the session comes up, routes flow both ways and reach both kernels,
//! withdrawals propagate, and a restart of bgpd keeps its routes in our
//! kernel. With a password, only the right one brings the session up.
//! Needs root.

mod support;

use std::net::IpAddr;
use std::time::Duration;

use calico_bgp::speaker::Origination;
use support::*;

const WAIT: Duration = Duration::from_secs(30);

fn frr_config() -> String {
    format!(
        "frr defaults traditional
hostname calico-bgp-peer
router bgp 64514
 bgp router-id {PEER_V4}
 no bgp ebgp-requires-policy
 no bgp network import-check
 bgp graceful-restart
 bgp graceful-restart preserve-fw-state
 timers bgp 3 9
 neighbor {OUR_V4} remote-as 64512
 neighbor {OUR_V4} timers connect 1
 address-family ipv4 unicast
  network 172.22.1.0/24
  network 172.22.2.0/24
 exit-address-family
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_exchanges_routes_and_keeps_them_through_a_bgpd_restart() {
    let lab = Lab::new("bgfrr");
    let mut frr = Frr::start(&lab, &frr_config());
    let ours = lab.speaker(64512);
    ours.handle
        .set_peer(peer_config(IpAddr::V4(PEER_V4), 64514))
        .await
        .unwrap();
    wait_for("the session with FRR", WAIT, async || {
        ours.established(IpAddr::V4(PEER_V4)).await
    })
    .await;

    // Ours to FRR and into its kernel.
    let mut block = Origination::new(net("192.168.102.0/26"));
    block.communities = vec![(64512 << 16) | 100];
    ours.handle.originate(block).await.unwrap();
    wait_for("our block in FRR's kernel", WAIT, async || {
        has_route(
            &lab.peer_kernel_routes(false),
            "192.168.102.0/26",
            "10.99.0.1",
        )
    })
    .await;
    let detail = frr.vtysh("show bgp ipv4 unicast 192.168.102.0/26");
    assert!(detail.contains("64512"), "{detail}");
    assert!(detail.contains("Community: 64512:100"), "{detail}");

    // FRR's to our kernel.
    wait_for("FRR's routes in our kernel", WAIT, async || {
        let routes = lab.our_kernel_routes(false);
        has_route(&routes, "172.22.1.0/24", "10.99.0.2")
            && has_route(&routes, "172.22.2.0/24", "10.99.0.2")
    })
    .await;

    // Withdrawals, both ways.
    ours.handle.withdraw(net("192.168.102.0/26")).await.unwrap();
    wait_for("FRR to drop our block", WAIT, async || {
        !lab.peer_kernel_routes(false).contains("192.168.102.0/26")
    })
    .await;
    frr.vtysh_config(&[
        "router bgp 64514",
        "address-family ipv4 unicast",
        "no network 172.22.2.0/24",
    ]);
    wait_for(
        "the withdrawn route to leave our kernel",
        WAIT,
        async || !lab.our_kernel_routes(false).contains("172.22.2.0/24"),
    )
    .await;

    // bgpd dies and comes back: the route stays throughout.
    frr.bgpd.kill();
    wait_for("our side to notice", WAIT, async || {
        !ours.established(IpAddr::V4(PEER_V4)).await
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(has_route(
        &lab.our_kernel_routes(false),
        "172.22.1.0/24",
        "10.99.0.2"
    ));
    frr.restart_bgpd(&lab);
    wait_for("the session again", WAIT, async || {
        ours.established(IpAddr::V4(PEER_V4)).await
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let routes = lab.our_kernel_routes(false);
    assert!(has_route(&routes, "172.22.1.0/24", "10.99.0.2"), "{routes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_with_a_password_needs_the_same_one() {
    let lab = Lab::new("bgfrrpw");
    let config = frr_config().replace(
        &format!(" neighbor {OUR_V4} timers connect 1\n"),
        &format!(" neighbor {OUR_V4} timers connect 1\n neighbor {OUR_V4} password {PASSWORD}\n"),
    );
    let frr = Frr::start(&lab, &config);
    let ours = lab.speaker(64512);
    wrong_then_right_password(
        &ours,
        peer_config(IpAddr::V4(PEER_V4), 64514),
        Duration::from_secs(5),
    )
    .await;
    let neighbor = frr.vtysh(&format!("show bgp neighbors {OUR_V4}"));
    assert!(neighbor.contains("BGP state = Established"), "{neighbor}");
    ours.handle
        .originate(Origination::new(net("192.168.105.0/26")))
        .await
        .unwrap();
    wait_for("our block in FRR's kernel", WAIT, async || {
        has_route(
            &lab.peer_kernel_routes(false),
            "192.168.105.0/26",
            "10.99.0.1",
        )
    })
    .await;
    wait_for("FRR's routes in our kernel", WAIT, async || {
        has_route(&lab.our_kernel_routes(false), "172.22.1.0/24", "10.99.0.2")
    })
    .await;
}
