//! Against the real kernel: every test makes its own network namespace
//! (removed on drop, even on failure) and runs nft inside it. Needs root.

mod common;

use std::collections::BTreeSet;

use calico_nftables::{
    BlockingNft, Chain, DataType, IpFamily, Key, Observed, PortProto, ReconcileError, Reconciler,
    Rhs, Rule, Ruleset, Set, Table, TableId, Transaction, Value,
};
use common::{NftNetns, calico, sample_ruleset, v4};

fn read(ns: &NftNetns) -> Observed {
    ns.reconciler([calico()])
        .read_blocking()
        .expect("reading the kernel")
}

/// Asserts the kernel holds exactly `desired` (read with a fresh reconciler).
fn assert_kernel_equals(ns: &NftNetns, desired: &Ruleset) {
    let observed = read(ns);
    assert!(observed.is_complete(), "{:?}", observed.unreadable);
    assert_eq!(&observed.ruleset, desired);
}

/// Another owner's tables in the same namespace, as kube-proxy would have.
fn foreign_tables(ns: &NftNetns) -> String {
    let script = "add table inet kube-proxy\n\
        add chain inet kube-proxy filter-input { type filter hook input priority -110; policy accept; }\n\
        add set inet kube-proxy cluster-ips { type ipv4_addr; }\n\
        add element inet kube-proxy cluster-ips { 10.96.0.1, 10.96.0.10 }\n\
        add rule inet kube-proxy filter-input ip daddr @cluster-ips counter accept\n\
        add table ip calico\n\
        add chain ip calico other\n";
    // A file of this call's own: tests run in parallel threads of one
    // process.
    let file = tempfile::Builder::new()
        .prefix("nft-foreign-")
        .suffix(".nft")
        .tempfile()
        .expect("creating script file");
    std::fs::write(file.path(), script).expect("writing script");
    ns.nft(&["-f", file.path().to_str().expect("utf-8 path")]);
    foreign_listing(ns)
}

fn foreign_listing(ns: &NftNetns) -> String {
    ns.nft(&["list", "table", "inet", "kube-proxy"]) + &ns.nft(&["list", "table", "ip", "calico"])
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
    assert_eq!(observed.ruleset, desired);
    assert!(Transaction::diff_observed(&observed, &desired).is_empty());

    // Nothing drifted, so a repair lists the kernel and sends nothing.
    let report = reconciler.repair_blocking(&desired).expect("repair");
    assert!(report.read_kernel);
    assert_eq!(report.statements, 0);
}

#[test]
fn updates_send_only_the_difference() {
    let ns = NftNetns::new("nft-update");
    let mut desired = sample_ruleset(20);
    let mut reconciler = ns.reconciler([calico()]);
    let full = reconciler.apply_blocking(&desired).expect("initial apply");
    assert!(full.statements > 100, "{full:?}");

    // One set element.
    desired
        .table_mut(calico())
        .sets
        .get_mut("cali40all-hosts")
        .map(std::sync::Arc::make_mut)
        .expect("set")
        .elements
        .insert(v4("10.9.0.0/16"));
    let report = reconciler.apply_blocking(&desired).expect("element update");
    assert_eq!((report.statements, report.elements), (1, 1), "{report:?}");
    assert!(
        !report.read_kernel,
        "the remembered state is used, not a listing"
    );
    assert_kernel_equals(&ns, &desired);

    // One chain: flushed and refilled, nothing else.
    let chain = desired
        .table_mut(calico())
        .chains
        .get_mut("cali-tw-cali00000007")
        .map(std::sync::Arc::make_mut)
        .expect("chain");
    chain.rules.insert(
        0,
        Rule::new()
            .matching(Key::Dport(PortProto::Tcp), Value::port(7))
            .drop(),
    );
    let rules = chain.rules.len();
    let report = reconciler.apply_blocking(&desired).expect("chain update");
    assert_eq!(report.statements, 1 + rules, "{report:?}");
    assert_eq!(report.elements, 0);
    assert_kernel_equals(&ns, &desired);

    // A workload goes away: two map entries, two chains.
    let table = desired.table_mut(calico());
    for chain in ["cali-tw-cali00000003", "cali-fw-cali00000003"] {
        table.chains.remove(chain);
    }
    for map in table.maps.values_mut() {
        std::sync::Arc::make_mut(map)
            .entries
            .remove(&Value::name("cali00000003"));
    }
    let report = reconciler
        .apply_blocking(&desired)
        .expect("workload removal");
    assert_eq!((report.statements, report.elements), (6, 2), "{report:?}");
    assert_kernel_equals(&ns, &desired);

    // Re-applying the same value sends nothing.
    let report = reconciler.apply_blocking(&desired).expect("no-op");
    assert_eq!(report.statements, 0);
}

#[test]
fn repair_puts_back_what_was_changed_behind_its_back() {
    let ns = NftNetns::new("nft-repair");
    let desired = sample_ruleset(3);
    let mut reconciler = ns.reconciler([calico()]);
    reconciler.apply_blocking(&desired).expect("apply");

    // The whole table deleted.
    ns.nft(&["delete", "table", "inet", "calico"]);
    // The reconciler trusts what it applied until told to look...
    assert_eq!(
        reconciler
            .apply_blocking(&desired)
            .expect("cached apply")
            .statements,
        0
    );
    // ...and repair looks.
    let report = reconciler.repair_blocking(&desired).expect("repair");
    assert!(report.read_kernel);
    assert_eq!(report.statements, Transaction::create(&desired).len());
    assert_kernel_equals(&ns, &desired);

    // Smaller edits: an element removed, a rule added, a chain flushed, an
    // element added that does not belong.
    ns.nft(&[
        "delete",
        "element",
        "inet",
        "calico",
        "cali40all-hosts",
        "{ 10.0.0.0/24 }",
    ]);
    ns.nft(&[
        "add",
        "element",
        "inet",
        "calico",
        "cali40s-web",
        "{ 10.66.0.1 }",
    ]);
    ns.nft(&[
        "add",
        "rule",
        "inet",
        "calico",
        "cali-pi-default.web",
        "accept",
    ]);
    ns.nft(&["flush", "chain", "inet", "calico", "cali-fw-cali00000001"]);
    let report = reconciler.repair_blocking(&desired).expect("repair");
    assert_eq!(report.elements, 2, "{report:?}");
    let pi = desired.tables[&calico()].chains["cali-pi-default.web"]
        .rules
        .len();
    let fw = desired.tables[&calico()].chains["cali-fw-cali00000001"]
        .rules
        .len();
    assert_eq!(report.statements, 2 + (1 + pi) + (1 + fw), "{report:?}");
    assert_kernel_equals(&ns, &desired);

    // Something the model cannot express (here packet tracing): the chain
    // is rewritten.
    ns.nft(&[
        "add",
        "rule",
        "inet",
        "calico",
        "cali-pi-default.web",
        "meta",
        "nftrace",
        "set",
        "1",
    ]);
    let observed = read(&ns);
    assert_eq!(observed.unreadable.len(), 1, "{:?}", observed.unreadable);
    reconciler.repair_blocking(&desired).expect("repair");
    assert_kernel_equals(&ns, &desired);

    // An object kind the model has no form for (a named counter): the
    // table is replaced as a whole, in one transaction.
    ns.nft(&["add", "counter", "inet", "calico", "stray"]);
    let observed = read(&ns);
    assert!(
        observed
            .unreadable
            .contains_key(&calico_nftables::Unreadable::Table(calico())),
        "{:?}",
        observed.unreadable
    );
    let report = reconciler.repair_blocking(&desired).expect("repair");
    assert_eq!(
        report.statements,
        1 + Transaction::create(&desired).len(),
        "delete table, then create"
    );
    assert_kernel_equals(&ns, &desired);
    assert!(!ns.ruleset_text().contains("stray"));
}

#[test]
fn stale_memory_is_recovered_by_reading_the_kernel() {
    let ns = NftNetns::new("nft-stale");
    let mut desired = sample_ruleset(2);
    let mut reconciler = ns.reconciler([calico()]);
    reconciler.apply_blocking(&desired).expect("apply");

    // Someone removes an element; the agent then wants it gone too. The
    // diff against memory deletes it again, nft refuses, and the
    // reconciler redoes the diff against a fresh listing.
    ns.nft(&[
        "delete",
        "element",
        "inet",
        "calico",
        "cali40all-hosts",
        "{ 10.0.1.0/24 }",
    ]);
    desired
        .table_mut(calico())
        .sets
        .get_mut("cali40all-hosts")
        .map(std::sync::Arc::make_mut)
        .expect("set")
        .elements
        .remove(&v4("10.0.1.0/24"));
    desired
        .table_mut(calico())
        .sets
        .get_mut("cali40all-hosts")
        .map(std::sync::Arc::make_mut)
        .expect("set")
        .elements
        .insert(v4("10.5.0.0/16"));
    let report = reconciler
        .apply_blocking(&desired)
        .expect("apply after drift");
    assert!(report.retried && report.read_kernel, "{report:?}");
    assert_eq!(
        (report.statements, report.elements),
        (1, 1),
        "only the missing element: {report:?}"
    );
    assert_kernel_equals(&ns, &desired);
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(&format!(": {s}"));
        source = s.source();
    }
    out
}

#[test]
fn rejected_statement_is_named_and_nothing_is_applied() {
    let ns = NftNetns::new("nft-reject");
    let reconciler = ns.reconciler([calico()]);
    rejections_name_the_statement(&ns, reconciler);
}

/// The same through nft's library, which must point at the same lines.
#[test]
fn rejected_statement_is_named_through_the_library() {
    let ns = NftNetns::new("nft-rejlib");
    let reconciler = ns.library_reconciler([calico()]);
    rejections_name_the_statement(&ns, reconciler);
}

fn rejections_name_the_statement<N: BlockingNft>(ns: &NftNetns, mut reconciler: Reconciler<N>) {
    let foreign = foreign_tables(ns);
    let good = sample_ruleset(2);
    reconciler.apply_blocking(&good).expect("apply");
    let before = ns.ruleset_text();

    // Valid as a value, refused by the kernel: a jump loop. Along with it,
    // a change that would be fine on its own.
    let mut bad = good.clone();
    let table = bad.table_mut(calico());
    table
        .sets
        .get_mut("cali40all-hosts")
        .map(std::sync::Arc::make_mut)
        .expect("set")
        .elements
        .insert(v4("10.77.0.0/16"));
    table.chains.insert(
        "loop-a".into(),
        std::sync::Arc::new(Chain::regular([Rule::new().jump("loop-b")])),
    );
    table.chains.insert(
        "loop-b".into(),
        std::sync::Arc::new(Chain::regular([Rule::new().counter().jump("loop-a")])),
    );
    // The kernel checks for loops in what a base chain can reach.
    table
        .chains
        .get_mut("cali-pi-default.web")
        .map(std::sync::Arc::make_mut)
        .expect("policy chain")
        .rules
        .insert(0, Rule::new().jump("loop-a"));
    assert!(bad.validate().is_empty());
    let err = reconciler
        .apply_blocking(&bad)
        .expect_err("the kernel refuses loops");
    println!("{}", error_chain(&err));
    let ReconcileError::Rejected {
        first, statements, ..
    } = &err
    else {
        panic!("expected a rejection, got {}", error_chain(&err));
    };
    let script = Transaction::diff(&good, &bad).render();
    assert_eq!(*statements, script.lines().count());
    assert_eq!(
        script.lines().nth(first.line - 1),
        Some(first.statement.as_str())
    );
    assert!(first.statement.contains("jump loop-"), "{first}");
    assert!(err.to_string().contains("loop-"), "{err}");
    assert_eq!(
        ns.ruleset_text(),
        before,
        "a refused transaction changes nothing"
    );

    // An element nft refuses: the error points at the element.
    let mut bad = good.clone();
    bad.table_mut(calico()).sets.insert(
        "overlap".into(),
        std::sync::Arc::new(
            Set::new(
                DataType::Concat(vec![DataType::Ipv4Addr, DataType::InetService]),
                true,
            )
            .with_elements([
                Value::Concat(vec![v4("10.0.0.0/24"), Value::port(80)]),
                Value::Concat(vec![v4("10.0.0.0/16"), Value::ports(80, 90)]),
            ]),
        ),
    );
    assert!(bad.validate().is_empty());
    let err = reconciler
        .apply_blocking(&bad)
        .expect_err("overlapping concatenated intervals");
    println!("{}", error_chain(&err));
    let ReconcileError::Rejected { first, .. } = &err else {
        panic!("expected a rejection, got {}", error_chain(&err));
    };
    assert!(
        first
            .statement
            .starts_with("add element inet calico overlap"),
        "{first}"
    );
    let near = first.near.as_deref().unwrap_or_default();
    assert!(near.contains("10.0.0.0"), "points at an element: {first}");
    assert_eq!(ns.ruleset_text(), before);

    // Invalid values never reach nft.
    let mut bad = good.clone();
    bad.table_mut(calico()).chains.insert(
        "typo".into(),
        std::sync::Arc::new(Chain::regular([Rule::new()
            .matching(Key::Saddr(IpFamily::V4), Rhs::set("no-such-set"))
            .accept()])),
    );
    let err = reconciler
        .apply_blocking(&bad)
        .expect_err("dangling set reference");
    println!("{}", error_chain(&err));
    assert!(matches!(err, ReconcileError::Invalid { .. }), "{err}");
    assert!(
        err.to_string().contains("chain typo, rule 1") && err.to_string().contains("no-such-set"),
        "{err}"
    );

    // After all that the good ruleset is still in place and still applies.
    assert_eq!(ns.ruleset_text(), before);
    assert_eq!(
        reconciler
            .apply_blocking(&good)
            .expect("good again")
            .statements,
        0
    );
    assert_eq!(foreign_listing(ns), foreign);
}

#[test]
fn other_tables_are_never_touched() {
    let ns = NftNetns::new("nft-coexist");
    let foreign = foreign_tables(&ns);
    let owned = [calico(), TableId::inet("calico-raw")];
    let mut reconciler = ns.reconciler(owned.clone());
    let mut desired = sample_ruleset(2).with_table(
        TableId::inet("calico-raw"),
        Table::new().with_chain("c", Chain::regular([Rule::new().accept()])),
    );
    reconciler.apply_blocking(&desired).expect("apply");
    assert_eq!(foreign_listing(&ns), foreign);

    desired.tables.remove(&TableId::inet("calico-raw"));
    let report = reconciler
        .apply_blocking(&desired)
        .expect("drop one owned table");
    assert_eq!(report.statements, 1);
    reconciler.repair_blocking(&desired).expect("repair");
    assert_eq!(foreign_listing(&ns), foreign);

    // A desired table the reconciler does not own is refused outright.
    let intruding = desired
        .clone()
        .with_table(TableId::inet("kube-proxy"), Table::new());
    let err = reconciler
        .apply_blocking(&intruding)
        .expect_err("not owned");
    assert!(matches!(err, ReconcileError::NotOwned { .. }), "{err}");

    reconciler.remove_all_blocking().expect("remove all");
    let tables: BTreeSet<String> = ns
        .nft(&["list", "tables"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        tables,
        [
            "table inet kube-proxy".to_string(),
            "table ip calico".to_string()
        ]
        .into(),
        "only the owned tables are gone"
    );
    assert_eq!(foreign_listing(&ns), foreign);
    // Removing what is already gone is fine.
    assert_eq!(
        reconciler
            .remove_all_blocking()
            .expect("idempotent")
            .statements,
        0
    );
}

#[test]
fn async_reconciler_on_tokio() {
    let ns = NftNetns::new("nft-tokio");
    let desired = sample_ruleset(2);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let nft = calico_nftables::TokioNft::new(ns.command());
    let mut reconciler = calico_nftables::Reconciler::new(nft, [calico()]);
    let report = runtime.block_on(async {
        let handle = tokio::spawn(async move {
            let first = reconciler.apply(&desired).await?;
            let again = reconciler.repair(&desired).await?;
            Ok::<_, ReconcileError>((first, again))
        });
        handle.await.expect("task")
    });
    let (first, again) = report.expect("async apply");
    assert!(first.statements > 10);
    assert_eq!(again.statements, 0);
    assert_kernel_equals(&ns, &sample_ruleset(2));
}
