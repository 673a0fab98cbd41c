use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use chrono::TimeZone;
use proptest::prelude::*;

use super::*;

fn t(secs: i64) -> Time {
    chrono::Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn attrs(pod: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("pod".to_owned(), pod.to_owned()),
        ("node".to_owned(), "n1".to_owned()),
    ])
}

fn block(cidr: &str) -> AllocationBlock {
    AllocationBlock::new_empty(net(cidr), Some("host:n1".into()), Some(t(0)), 1000)
}

#[test]
fn hands_out_in_queue_order_and_skips_reservations() {
    let mut b = block("10.0.0.0/29");
    let r = Reservations::new([net("10.0.0.1/32"), net("10.0.0.4/31")]);
    let got = b.auto_assign(3, Some("h1"), &attrs("p1"), &r);
    assert_eq!(got, vec![ip("10.0.0.0"), ip("10.0.0.2"), ip("10.0.0.3")]);
    assert_eq!(b.num_free(&r), 2, ".6 and .7 remain usable");
    assert_eq!(
        b.unallocated,
        vec![1, 4, 5, 6, 7],
        "reserved ordinals keep their place"
    );
    assert_eq!(
        b.attributes.len(),
        1,
        "one attribute shared by the allocation"
    );
    assert_eq!(b.sequence_for(2), 1000);
    assert_eq!(b.ips_by_handle("h1").len(), 3);
    b.validate(t(0)).unwrap();
}

#[test]
fn released_address_waits_out_the_cooldown_then_goes_to_the_tail() {
    let mut b = block("10.0.0.0/30");
    let none = Reservations::none();
    let first = b.auto_assign(1, Some("h1"), &attrs("p1"), &none);
    assert_eq!(first, vec![ip("10.0.0.0")]);
    let out = b
        .release(&[ReleaseOptions::address(ip("10.0.0.0"))], t(10), 60)
        .unwrap();
    assert_eq!(out.count, 1);
    assert_eq!(out.by_handle, BTreeMap::from([("h1".to_owned(), 1)]));
    assert_eq!(b.occupancy(ip("10.0.0.0")), Some(Occupancy::CoolingDown));
    assert!(
        !b.is_empty(),
        "a cooling-down address still holds the block"
    );
    // Not freed before the cooldown ends.
    assert!(!b.garbage_collect(t(69), 60));
    assert_eq!(b.num_free(&none), 3);
    assert!(b.garbage_collect(t(70), 60));
    assert_eq!(
        b.unallocated,
        vec![1, 2, 3, 0],
        "freed ordinal joins the tail of the queue"
    );
    assert!(b.attributes.is_empty() && b.is_empty());
    b.validate(t(70)).unwrap();
}

#[test]
fn zero_cooldown_frees_at_once() {
    let mut b = block("10.0.0.0/30");
    b.auto_assign(2, Some("h1"), &attrs("p1"), &Reservations::none());
    assert_eq!(b.release_by_handle("h1", None, t(5), 0), 2);
    assert_eq!(b.unallocated, vec![2, 3, 0, 1]);
    assert!(b.is_empty());
    assert!(b.sequence_number_for_allocation.is_empty());
}

#[test]
fn stale_release_is_refused_whole() {
    let mut b = block("10.0.0.0/30");
    let none = Reservations::none();
    b.auto_assign(2, Some("h1"), &attrs("p1"), &none);
    let stale = ReleaseOptions {
        address: ip("10.0.0.1"),
        handle: Some("h1".into()),
        sequence_number: Some(999),
    };
    let good = ReleaseOptions {
        address: ip("10.0.0.0"),
        handle: Some("h1".into()),
        sequence_number: Some(1000),
    };
    let before = b.clone();
    assert!(matches!(
        b.release(&[good.clone(), stale], t(1), 0),
        Err(BlockError::SequenceMismatch {
            requested: 999,
            actual: 1000,
            ..
        })
    ));
    assert_eq!(b, before, "nothing changes when any request is stale");
    let wrong_handle = ReleaseOptions {
        handle: Some("h2".into()),
        ..good.clone()
    };
    assert!(matches!(
        b.release(&[wrong_handle], t(1), 0),
        Err(BlockError::HandleMismatch { .. })
    ));
    assert_eq!(b.release(&[good], t(1), 0).unwrap().count, 1);
}

#[test]
fn release_of_free_address_reports_it() {
    let mut b = block("10.0.0.0/30");
    let out = b
        .release(&[ReleaseOptions::address(ip("10.0.0.2"))], t(1), 0)
        .unwrap();
    assert_eq!(out.not_allocated, vec![ip("10.0.0.2")]);
    assert_eq!(out.count, 0);
    assert!(matches!(
        b.release(&[ReleaseOptions::address(ip("10.0.1.2"))], t(1), 0),
        Err(BlockError::NotInBlock { .. })
    ));
}

#[test]
fn assign_specific_address() {
    let mut b = block("fd00::/126");
    b.assign(ip("fd00::2"), Some("h"), &attrs("p")).unwrap();
    assert_eq!(b.unallocated, vec![0, 1, 3]);
    assert!(matches!(
        b.assign(ip("fd00::2"), Some("h"), &attrs("p")),
        Err(BlockError::AlreadyAssigned { .. })
    ));
    assert!(matches!(
        b.assign(ip("fd00::9"), Some("h"), &attrs("p")),
        Err(BlockError::NotInBlock { .. })
    ));
    let got = b.auto_assign(5, Some("h"), &attrs("p"), &Reservations::none());
    assert_eq!(got, vec![ip("fd00::"), ip("fd00::1"), ip("fd00::3")]);
    assert_eq!(
        b.attributes.len(),
        1,
        "same handle and attributes share one entry"
    );
}

#[test]
fn handles_with_carriage_return_junk_match() {
    let mut b = block("10.0.0.0/30");
    b.auto_assign(1, Some("h1\r\neth0"), &attrs("p"), &Reservations::none());
    assert_eq!(b.ips_by_handle("h1"), vec![ip("10.0.0.0")]);
    assert_eq!(b.release_by_handle("h1", None, t(1), 0), 1);
}

#[test]
fn validate_catches_corruption() {
    let mut b = block("10.0.0.0/30");
    b.auto_assign(1, Some("h1"), &attrs("p"), &Reservations::none());
    let mut dup = b.clone();
    dup.unallocated.push(1);
    assert!(dup.validate(t(0)).unwrap_err().contains("more than once"));
    let mut both = b.clone();
    both.unallocated.push(0);
    assert!(
        both.validate(t(0))
            .unwrap_err()
            .contains("is allocated but appears")
    );
    let mut dangling = b.clone();
    dangling.allocations[0] = Some(7);
    assert!(
        dangling
            .validate(t(0))
            .unwrap_err()
            .contains("nonexistent attribute")
    );
    let mut future = b.clone();
    future
        .release(&[ReleaseOptions::address(ip("10.0.0.0"))], t(100), 600)
        .unwrap();
    assert!(future.validate(t(50)).unwrap_err().contains("clock skew"));
}

#[test]
fn windows_reserved_allocations_leave_a_block_empty() {
    let mut b = block("10.0.0.0/30");
    b.auto_assign(
        1,
        Some(WINDOWS_RESERVED_HANDLE),
        &BTreeMap::new(),
        &Reservations::none(),
    );
    assert!(b.is_empty());
    b.auto_assign(1, Some("pod"), &BTreeMap::new(), &Reservations::none());
    assert!(!b.is_empty());
}

/// One step of a random workload against a block.
#[derive(Debug, Clone)]
enum Op {
    Auto { n: usize, handle: u8 },
    Assign { ordinal: usize, handle: u8 },
    Release { ordinals: Vec<usize> },
    ReleaseHandle { handle: u8 },
    Tick { seconds: i64 },
    Collect,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..6, 0u8..4).prop_map(|(n, handle)| Op::Auto { n, handle }),
        1 => (0usize..16, 0u8..4).prop_map(|(ordinal, handle)| Op::Assign { ordinal, handle }),
        3 => prop::collection::vec(0usize..16, 1..4).prop_map(|ordinals| Op::Release { ordinals }),
        1 => (0u8..4).prop_map(|handle| Op::ReleaseHandle { handle }),
        2 => (0i64..40).prop_map(|seconds| Op::Tick { seconds }),
        1 => Just(Op::Collect),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Under any sequence of allocations and releases: no address is handed
    /// out while it is held or cooling down, no reserved address is ever
    /// handed out, an address released at t is not reused before
    /// t + cooldown, and the block's counts stay consistent.
    #[test]
    fn no_address_twice_none_reserved_counts_consistent(
        ops in prop::collection::vec(op(), 1..60),
        reserved in prop::collection::vec(0usize..16, 0..4),
        cooldown in 0u32..30,
    ) {
        let cidr = net("10.0.0.0/28");
        let reservations = Reservations::new(reserved.iter().map(|&o| {
            crate::cidr::make_net(address_at(&cidr, o), 32).unwrap()
        }));
        let mut b = AllocationBlock::new_empty(cidr, Some("host:n1".into()), None, 1);
        let mut now = 0i64;
        // Model: who holds each address, and when released ones were released.
        let mut held: BTreeMap<IpAddr, String> = BTreeMap::new();
        let mut released_at: BTreeMap<IpAddr, i64> = BTreeMap::new();

        for op in ops {
            match op {
                Op::Auto { n, handle } => {
                    let h = format!("h{handle}");
                    let before_free = b.num_free(&reservations);
                    let got = b.auto_assign(n, Some(&h), &attrs(&h), &reservations);
                    prop_assert_eq!(got.len(), n.min(before_free));
                    for a in got {
                        prop_assert!(!reservations.contains(a), "reserved {a} handed out");
                        prop_assert!(!held.contains_key(&a), "{a} handed out twice");
                        if let Some(r) = released_at.remove(&a) {
                            prop_assert!(now >= r + i64::from(cooldown), "{a} reused during cooldown");
                        }
                        held.insert(a, h.clone());
                    }
                }
                Op::Assign { ordinal, handle } => {
                    let a = address_at(&cidr, ordinal);
                    let h = format!("h{handle}");
                    let result = b.assign(a, Some(&h), &attrs(&h));
                    let busy = held.contains_key(&a) || b.occupancy(a) == Some(Occupancy::CoolingDown);
                    prop_assert_eq!(result.is_err(), busy);
                    if result.is_ok() {
                        released_at.remove(&a);
                        held.insert(a, h);
                    }
                }
                Op::Release { ordinals } => {
                    let reqs: Vec<_> = ordinals.iter().map(|&o| ReleaseOptions::address(address_at(&cidr, o))).collect();
                    let out = b.release(&reqs, t(now), cooldown).unwrap();
                    let asked: BTreeSet<IpAddr> = reqs.iter().map(|r| r.address).collect();
                    let expected: BTreeSet<IpAddr> = asked.iter().copied().filter(|a| held.contains_key(a)).collect();
                    prop_assert_eq!(out.count, expected.len());
                    for a in expected {
                        held.remove(&a);
                        released_at.insert(a, now);
                    }
                }
                Op::ReleaseHandle { handle } => {
                    let h = format!("h{handle}");
                    let mine: Vec<IpAddr> = held.iter().filter(|(_, v)| **v == h).map(|(a, _)| *a).collect();
                    prop_assert_eq!(b.release_by_handle(&h, None, t(now), cooldown), mine.len());
                    for a in mine {
                        held.remove(&a);
                        released_at.insert(a, now);
                    }
                }
                Op::Tick { seconds } => now += seconds,
                Op::Collect => {
                    b.garbage_collect(t(now), cooldown);
                }
            }
            b.validate(t(now)).map_err(TestCaseError::fail)?;
            prop_assert_eq!(b.num_in_use() + b.unallocated.len(), 16);
            prop_assert_eq!(
                b.allocated().filter(|(_, _, a)| a.is_some_and(|a| a.released_at.is_none())).count(),
                held.len()
            );
            for h in 0..4u8 {
                let h = format!("h{h}");
                let mut want: Vec<IpAddr> = held.iter().filter(|(_, v)| **v == h).map(|(a, _)| *a).collect();
                want.sort();
                prop_assert_eq!(b.ips_by_handle(&h), want);
            }
            let free_unreserved = (0..16)
                .map(|o| address_at(&cidr, o))
                .filter(|a| !reservations.contains(*a) && b.occupancy(*a) == Some(Occupancy::Free))
                .count();
            prop_assert_eq!(b.num_free(&reservations), free_unreserved);
        }
    }

    /// The block's JSON round-trips through serde after any workload.
    #[test]
    fn json_round_trip(ops in prop::collection::vec(op(), 1..30)) {
        let mut b = AllocationBlock::new_empty(net("fd00::/124"), None, None, 5);
        let none = Reservations::none();
        for op in ops {
            match op {
                Op::Auto { n, handle } => { b.auto_assign(n, Some(&format!("h{handle}")), &attrs("p"), &none); }
                Op::Release { ordinals } => {
                    let reqs: Vec<_> = ordinals.iter().map(|&o| ReleaseOptions::address(address_at(&b.cidr, o))).collect();
                    b.release(&reqs, t(3), 10).unwrap();
                }
                _ => {}
            }
        }
        let json = serde_json::to_string(&b.to_record()).unwrap();
        let back = AllocationBlock::from_record(serde_json::from_str(&json).unwrap()).unwrap();
        prop_assert_eq!(back, b);
    }
}
