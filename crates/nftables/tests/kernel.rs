//! Against the real kernel: every test makes its own network namespace
//! (removed on drop) and runs nft inside it. Needs root.

mod common;

use calico_nftables::{Observed, Ruleset, Transaction};
use common::{NftNetns, calico, sample_ruleset};

fn read(ns: &NftNetns) -> Observed {
    ns.reconciler([calico()])
        .read_blocking()
        .expect("reading the kernel")
}

#[test]
fn applied_ruleset_reads_back_equal() {
    let ns = NftNetns::new("nft-roundtrip");
    let desired = sample_ruleset(3);
    assert!(desired.validate().is_empty(), "{:?}", desired.validate());
    let mut reconciler = ns.reconciler([calico()]);
    let report = reconciler.apply_blocking(&desired).expect("applying");
    assert!(report.read_kernel, "the first apply lists the kernel");
    assert_eq!(report.statements, Transaction::create(&desired).len());

    let observed = read(&ns);
    assert!(observed.is_complete(), "{:?}", observed.unreadable);
    for (id, table) in &desired.tables {
        let got = &observed.ruleset.tables[id];
        for (name, chain) in &table.chains {
            assert_eq!(got.chains.get(name), Some(chain), "chain {name}");
        }
        assert_eq!(got.sets, table.sets);
        assert_eq!(got.maps, table.maps);
    }
    assert_eq!(observed.ruleset, desired);
    assert_eq!(
        Transaction::diff_observed(&observed, &desired),
        Transaction::default()
    );
    let _ = Ruleset::new();
}
