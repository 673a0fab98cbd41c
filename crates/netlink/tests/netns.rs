//! Entering network namespaces, against the real kernel. Needs root.

use calico_netlink::testing::ScratchNetns;
use calico_netlink::{NetNs, Netlink};

/// A scratch namespace with a veth pair only it has.
fn namespace_with_link(tag: &str, link: &str) -> ScratchNetns {
    let ns = ScratchNetns::new(tag);
    ns.exec(&[
        "ip",
        "link",
        "add",
        link,
        "type",
        "veth",
        "peer",
        "name",
        &format!("{link}p"),
    ])
    .expect("creating a veth pair in the scratch namespace");
    ns
}

#[test]
fn run_here_works_inside_and_brings_the_thread_back() {
    let scratch = namespace_with_link("here", "herelink0");
    let target = NetNs::open(scratch.path()).unwrap();
    let home = NetNs::current().unwrap();
    assert!(!target.is_current());

    let (inside, mut socket) = target
        .run_here(|| (target.is_current(), Netlink::open().unwrap()))
        .unwrap();
    assert!(inside, "the closure did not run in the namespace");
    assert!(home.is_current(), "the thread stayed in the namespace");
    assert_eq!(NetNs::current().unwrap(), home);

    // The socket opened inside stays bound to the namespace.
    assert!(socket.link_by_name("herelink0").unwrap().is_some());
    let mut outside = Netlink::open().unwrap();
    assert!(outside.link_by_name("herelink0").unwrap().is_none());
}

#[test]
fn run_here_brings_the_thread_back_after_a_panic() {
    let scratch = ScratchNetns::new("herepanic");
    let target = NetNs::open(scratch.path()).unwrap();
    let home = NetNs::current().unwrap();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        target.run_here(|| panic!("inside the namespace"))
    }));
    assert!(outcome.is_err());
    assert!(
        home.is_current(),
        "a panic left the thread in the namespace"
    );
}

#[test]
fn run_here_in_the_current_namespace_runs_inline() {
    let home = NetNs::current().unwrap();
    assert_eq!(home.run_here(|| 7).unwrap(), 7);
    assert!(home.is_current());
}
