//! Our speaker against GoBGP 3, iBGP (as in Calico's mesh) across a veth
//! pair: the session comes up, routes flow both ways, withdrawals
//! propagate, and when GoBGP dies its routes stay in our kernel for its
//! restart time, then go; when it is back they return. With a password,
//! only the right one brings the session up. Needs root.

mod support;

use std::net::IpAddr;
use std::time::Duration;

use calico_bgp::speaker::Origination;
use support::*;

const WAIT: Duration = Duration::from_secs(30);

fn gobgp_config() -> String {
    format!(
        r#"[global.config]
  as = 64512
  router-id = "{PEER_V4}"
  port = 179
  local-address-list = ["{PEER_V4}"]

[[neighbors]]
  [neighbors.config]
    neighbor-address = "{OUR_V4}"
    peer-as = 64512
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 9
    keepalive-interval = 3
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 5
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
"#
    )
}

fn gobgp_has(g: &GoBgp, prefix: &str) -> bool {
    g.try_gobgp(&["global", "rib", "-a", "ipv4", prefix])
        .unwrap_or_default()
        .contains(prefix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gobgp_exchanges_routes_and_its_crash_is_bridged_by_graceful_restart() {
    let lab = Lab::new("bggo");
    let mut gobgp = GoBgp::start(&lab, &gobgp_config());
    let ours = lab.speaker(64512);
    ours.handle
        .set_peer(peer_config(IpAddr::V4(PEER_V4), 64512))
        .await
        .unwrap();
    wait_for("the session with GoBGP", WAIT, async || {
        ours.established(IpAddr::V4(PEER_V4)).await
    })
    .await;
    assert!(
        gobgp.gobgp(&["neighbor"]).contains("Establ"),
        "{}",
        gobgp.gobgp(&["neighbor"])
    );

    // Ours to GoBGP: next hop is our address, LOCAL_PREF and community set.
    let mut block = Origination::new(net("192.168.101.0/26"));
    block.communities = vec![(64512 << 16) | 100];
    ours.handle.originate(block).await.unwrap();
    wait_for("GoBGP to learn our block", WAIT, async || {
        gobgp_has(&gobgp, "192.168.101.0/26")
    })
    .await;
    let rib = gobgp.gobgp(&["global", "rib", "-a", "ipv4", "192.168.101.0/26"]);
    assert!(rib.contains("10.99.0.1"), "{rib}");
    assert!(rib.contains("64512:100"), "{rib}");
    assert!(rib.contains("LocalPref: 100"), "{rib}");

    // GoBGP's to our kernel.
    gobgp.gobgp(&["global", "rib", "add", "172.21.1.0/24", "-a", "ipv4"]);
    gobgp.gobgp(&["global", "rib", "add", "172.21.2.0/24", "-a", "ipv4"]);
    wait_for("GoBGP's routes in our kernel", WAIT, async || {
        let routes = lab.our_kernel_routes(false);
        has_route(&routes, "172.21.1.0/24", "10.99.0.2")
            && has_route(&routes, "172.21.2.0/24", "10.99.0.2")
    })
    .await;

    // Withdrawals, both ways.
    ours.handle.withdraw(net("192.168.101.0/26")).await.unwrap();
    wait_for("GoBGP to drop our block", WAIT, async || {
        !gobgp_has(&gobgp, "192.168.101.0/26")
    })
    .await;
    gobgp.gobgp(&["global", "rib", "del", "172.21.2.0/24", "-a", "ipv4"]);
    wait_for(
        "the withdrawn route to leave our kernel",
        WAIT,
        async || !lab.our_kernel_routes(false).contains("172.21.2.0/24"),
    )
    .await;

    // GoBGP dies: its route stays for its restart time (5 s), then goes.
    gobgp.daemon.kill();
    wait_for("our side to notice", WAIT, async || {
        !ours.established(IpAddr::V4(PEER_V4)).await
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        has_route(&lab.our_kernel_routes(false), "172.21.1.0/24", "10.99.0.2"),
        "kept during the restart time"
    );
    wait_for(
        "the stale route to expire",
        Duration::from_secs(10),
        async || !lab.our_kernel_routes(false).contains("172.21.1.0/24"),
    )
    .await;

    // It comes back: the session and its routes return.
    drop(gobgp);
    let gobgp = GoBgp::start(&lab, &gobgp_config());
    gobgp.gobgp(&["global", "rib", "add", "172.21.1.0/24", "-a", "ipv4"]);
    wait_for("the session again", WAIT, async || {
        ours.established(IpAddr::V4(PEER_V4)).await
    })
    .await;
    wait_for("the route again", WAIT, async || {
        has_route(&lab.our_kernel_routes(false), "172.21.1.0/24", "10.99.0.2")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gobgp_with_a_password_needs_the_same_one() {
    let lab = Lab::new("bggopw");
    let config = gobgp_config().replace(
        "    peer-as = 64512\n",
        &format!("    peer-as = 64512\n    auth-password = \"{PASSWORD}\"\n"),
    );
    let gobgp = GoBgp::start(&lab, &config);
    let ours = lab.speaker(64512);
    wrong_then_right_password(
        &ours,
        peer_config(IpAddr::V4(PEER_V4), 64512),
        Duration::from_secs(5),
    )
    .await;
    assert!(gobgp.gobgp(&["neighbor"]).contains("Establ"));
    ours.handle
        .originate(Origination::new(net("192.168.104.0/26")))
        .await
        .unwrap();
    wait_for("GoBGP to learn our block", WAIT, async || {
        gobgp_has(&gobgp, "192.168.104.0/26")
    })
    .await;
    gobgp.gobgp(&["global", "rib", "add", "172.21.3.0/24", "-a", "ipv4"]);
    wait_for("GoBGP's route in our kernel", WAIT, async || {
        has_route(&lab.our_kernel_routes(false), "172.21.3.0/24", "10.99.0.2")
    })
    .await;
}
