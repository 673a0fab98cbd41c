//! The generated rulesets in a real kernel: nft accepts every fixture's
//! ruleset, lists it back exactly as generated (so a repair changes
//! nothing), and moving between fixtures sends only the difference. Needs
//! root; runs in a scratch namespace, never touching the host's ruleset.

mod support;

use calico_dataplane::generate;
use calico_netlink::testing::ScratchNetns;
use calico_nftables::{NftCli, NftCommand, Reconciler, Ruleset, TableId, Transaction};

#[test]
fn fixtures_round_trip_through_the_kernel() {
    let ns = ScratchNetns::new("dprt");
    let fixtures = support::fixtures::all();
    let owned: Vec<TableId> = fixtures
        .iter()
        .flat_map(|f| f.config.tables())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut reconciler = Reconciler::new(NftCli::new(NftCommand::in_netns(ns.path())), owned);
    let mut previous = Ruleset::default();
    for fixture in fixtures.iter().chain(fixtures.iter().rev()) {
        let desired = generate(&fixture.dataplane(), &fixture.config);
        let report = reconciler
            .apply_blocking(&desired)
            .unwrap_or_else(|e| panic!("{}: nft refused the generated ruleset: {e}", fixture.name));
        assert_eq!(
            report.statements,
            Transaction::diff(&previous, &desired).len(),
            "{}: only the difference is sent",
            fixture.name
        );
        let observed = reconciler.read_blocking().expect("listing the tables");
        assert!(
            observed.is_complete(),
            "{}: parts of the kernel's tables could not be read: {:?}",
            fixture.name,
            observed.unreadable
        );
        for (id, table) in &desired.tables {
            let got = &observed.ruleset.tables[id];
            for (name, chain) in &table.chains {
                assert_eq!(
                    got.chains.get(name),
                    Some(chain),
                    "{}: chain {name} of {id} lists back differently",
                    fixture.name
                );
            }
            assert_eq!(
                got, table,
                "{}: table {id} lists back differently",
                fixture.name
            );
        }
        let repair = reconciler.repair_blocking(&desired).expect("repair");
        assert_eq!(repair.statements, 0, "{}: {repair:?}", fixture.name);
        previous = desired;
    }
    reconciler
        .remove_all_blocking()
        .expect("removing the tables");
}
