//! IPIP against a kernel that has it. The project's machines run a kernel
//! without IPIP that cannot load modules, so the test boots a Debian
//! kernel in a VM (see `vm`: KVM where the host has hardware
//! virtualisation, qemu's emulation where `/dev/kvm` is PVM) and runs
//! itself there: inside, a lab of namespaces (see `common`) is
//! programmed by the real driver for an IP pool with `ipipMode: Always`,
//! then `CrossSubnet`, and pods talk over TCP through `tunl0`. The guest
//! prints what it checked on the serial console; the host asserts on it.
//!
//! Needs root, `/dev/kvm`, and the Debian packages `linux-image-amd64`,
//! `qemu-system-x86` and `busybox-static` (scripts/setup.sh). Skipped,
//! saying so, only when `/dev/kvm` is absent. About 35 s emulated on a
//! busy two-core machine.

mod common;
mod vm;

use std::path::Path;
use std::time::Duration;

use calico_model::EncapMode;
use calico_netlink::testing::ScratchNetns;
use calico_routing::Reconciler;
use common::{Lab, PoolModes, all_pairs_reach, sh, tx_packets};

/// Set in the guest; selects the guest side of the test.
const GUEST_ENV: &str = "CALICO_ROUTING_IPIP_GUEST";
/// The prefix of the guest's report lines on the console.
const REPORT: &str = "ipip-guest:";

#[test]
fn ipip_pools_carry_pod_traffic_in_a_vm() {
    if vm::is_guest(GUEST_ENV) {
        guest();
        return;
    }
    if !Path::new("/dev/kvm").exists() {
        eprintln!(
            "SKIPPED ipip_pools_carry_pod_traffic_in_a_vm: /dev/kvm is absent, \
             so no kernel with IPIP can be booted to test against"
        );
        return;
    }
    let run = vm::run(&vm::Guest {
        test: "ipip_pools_carry_pod_traffic_in_a_vm",
        env: GUEST_ENV,
        modules: &["ipip", "veth", "bridge", "nf_tables"],
        programs: &["ip", "nft"],
        timeout: Duration::from_secs(180),
    })
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "guest with {} ({:?}) ran in {:.1} s",
        run.kernel.display(),
        run.accelerator,
        run.elapsed.as_secs_f64()
    );
    let console = run.console.join("\n");
    let report: Vec<&str> = run
        .console
        .iter()
        // libtest may have started the line ("test NAME ... ").
        .filter_map(|l| l.split_once(REPORT).map(|(_, r)| r.trim()))
        .collect();
    let has = |line: &str| report.contains(&line);

    assert_eq!(run.exit, Some(0), "the guest's test failed:\n{console}");
    assert!(
        has("result ok"),
        "no success line from the guest:\n{console}"
    );
    assert!(has("ipip supported"), "{console}");
    // What Calico programs for ipipMode Always: every remote block via
    // tunl0, the remote node as gateway, onlink.
    for line in [
        "always a tunl0 address 192.168.0.2/32 mtu 1480",
        "always a route 192.168.1.0/26 via 10.0.1.12 dev tunl0 onlink",
        "always a route 192.168.2.0/26 via 10.0.2.13 dev tunl0 onlink",
        "always a route blackhole 192.168.0.0/26",
        "always a->b tcp ok through tunl0",
        "always a->c tcp ok through tunl0",
        "always reapply no changes",
        "tunl0 created where the kernel made none",
        // CrossSubnet: the node in the same subnet directly, the other
        // through the tunnel.
        "cross-subnet a route 192.168.1.0/26 via 10.0.1.12 dev eth0",
        "cross-subnet a route 192.168.2.0/26 via 10.0.2.13 dev tunl0 onlink",
        "cross-subnet a->b tcp ok not through tunl0",
        "cross-subnet a->c tcp ok through tunl0",
    ] {
        assert!(
            has(line),
            "missing {line:?} in the guest's report:\n{console}"
        );
    }
}

fn report(line: &str) {
    println!("{REPORT} {line}");
}

/// Runs inside the VM, as root in its initramfs.
fn guest() {
    let started = std::time::Instant::now();
    let timing = |phase: &str| {
        eprintln!(
            "guest timing: {phase} done after {:.1} s",
            started.elapsed().as_secs_f64()
        )
    };
    let probe = ScratchNetns::new("rt-ipip");
    let mut reconciler = Reconciler::open_default(&probe.path()).unwrap();
    assert!(
        reconciler.ipip_supported().unwrap(),
        "the guest kernel has no IPIP although the ipip module is loaded"
    );
    report("ipip supported");
    drop(probe);

    // Where the kernel gives new namespaces no tunl0 of their own, the
    // driver creates it.
    let only_init = "/proc/sys/net/core/fb_tunnels_only_for_init_net";
    std::fs::write(only_init, "1").unwrap();
    let bare = ScratchNetns::new("rt-ipip");
    assert!(!bare.link_names().iter().any(|l| l == "tunl0"));
    let mut reconciler = Reconciler::open_default(&bare.path()).unwrap();
    assert!(reconciler.ipip_supported().unwrap());
    let link = sh(&bare, "ip -d link show tunl0");
    assert!(link.contains("ipip"), "{link}");
    report("tunl0 created where the kernel made none");
    drop(bare);
    std::fs::write(only_init, "0").unwrap();
    timing("probes");

    let mut lab = Lab::new(&[("a", 1, 11), ("b", 1, 12), ("c", 2, 13)], true);
    lab.add_pod("a", "192.168.0.5");
    lab.add_pod("b", "192.168.1.5");
    lab.add_pod("c", "192.168.2.5");
    assert!(
        !lab.reaches(("a", 0), ("b", 0)),
        "without routes the pods cannot reach each other"
    );

    timing("lab");
    let desired = lab.program(PoolModes::ipip(EncapMode::Always));
    timing("program");
    let a = &lab.node("a").ns;
    let address = sh(a, "ip -4 -o addr show dev tunl0");
    let link = sh(a, "ip -d link show tunl0");
    assert!(link.contains("ipip"), "{link}");
    assert!(link.contains("UP"), "{link}");
    assert!(address.contains("192.168.0.2/32"), "{address}");
    assert!(link.contains("mtu 1480"), "host MTU 1500 less 20: {link}");
    report("always a tunl0 address 192.168.0.2/32 mtu 1480");
    report_routes("always", a);
    all_pairs_reach(&lab);
    report_traffic("always", &lab, "b");
    report_traffic("always", &lab, "c");
    let mut again = Reconciler::open_default(&a.path()).unwrap();
    let changes = again.apply(&desired["a"]).unwrap();
    assert_eq!(changes, Vec::<String>::new());
    report("always reapply no changes");

    timing("always");
    lab.program(PoolModes::ipip(EncapMode::CrossSubnet));
    report_routes("cross-subnet", a);
    all_pairs_reach(&lab);
    report_traffic("cross-subnet", &lab, "b");
    report_traffic("cross-subnet", &lab, "c");

    timing("cross-subnet");
    report("result ok");
}

/// Node a's routes of ours, one report line each.
fn report_routes(phase: &str, ns: &ScratchNetns) {
    for route in sh(ns, "ip route show proto 80").lines() {
        report(&format!("{phase} a route {}", route.trim()));
    }
}

/// One TCP exchange from a's pod to `to`'s, and whether a's tunl0 sent
/// packets meanwhile.
fn report_traffic(phase: &str, lab: &Lab, to: &str) {
    let a = &lab.node("a").ns;
    let before = tx_packets(a, "tunl0");
    assert!(lab.reaches(("a", 0), (to, 0)), "a -> {to}");
    let tunnelled = tx_packets(a, "tunl0") > before;
    report(&format!(
        "{phase} a->{to} tcp ok {}",
        if tunnelled {
            "through tunl0"
        } else {
            "not through tunl0"
        }
    ));
}
