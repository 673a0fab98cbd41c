//! What an update costs: one set element or one chain changed in a ruleset
//! of 10,000 set elements and about 500 chains, sent as a diff, against
//! deleting and re-creating the whole table (what a driver without a diff
//! sends for every change).
//!
//!     cargo bench -p calico-nftables --bench reconcile [-- ITERATIONS]
//!
//! Needs root. Runs in scratch network namespaces (nft is started there
//! through `nsenter`, as the tests do), interleaving the variants so that
//! drift affects them alike, and prints medians and 90th percentiles.
//!
//! Two rulesets: the 10,000 elements as CIDRs in an interval set (what a
//! large network set becomes), and as addresses in a plain hash set (what
//! a selector over many pods becomes). They differ because nft fetches the
//! elements of every interval set in the table before any element update.
//! Floors printed alongside: `nft -f` of a statement that changes nothing
//! (process start, empty transaction); one element and one chain changed
//! in a table that holds nothing else (the kernel's commit); the pure diff.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use calico_nftables::{
    BlockingNft, Key, NftCli, PortProto, Rule, Ruleset, Transaction, Value, nft::NftCommand,
};
use common::{NftNetns, calico, sample_table};

const WORKLOADS: usize = 250;
const ELEMENTS: u32 = 10_000;

/// The sample table for 250 workloads (503 chains), with 10,000 elements
/// either as /30 CIDRs in the interval set or as addresses in the hash set.
fn ruleset(cidrs: bool) -> Ruleset {
    let mut table = sample_table(WORKLOADS);
    let name = if cidrs {
        "cali40all-hosts"
    } else {
        "cali40s-web"
    };
    let set = table
        .sets
        .get_mut(name)
        .map(std::sync::Arc::make_mut)
        .expect("set");
    let missing = ELEMENTS - set.elements.len() as u32;
    set.elements.extend((0..missing).map(|i| {
        if cidrs {
            Value::net(
                ipnet::Ipv4Net::new(Ipv4Addr::from(0x6440_0000 + i * 4), 30).expect("prefix"),
            )
        } else {
            Value::addr(Ipv4Addr::from(0x6440_0000 + i))
        }
    }));
    Ruleset::new().with_table(calico(), table)
}

struct Samples {
    name: String,
    times: Vec<Duration>,
    statements: usize,
    bytes: usize,
}

impl Samples {
    fn new(name: impl Into<String>) -> Samples {
        Samples {
            name: name.into(),
            times: Vec::new(),
            statements: 0,
            bytes: 0,
        }
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.times.clone();
        sorted.sort();
        sorted[((sorted.len() - 1) as f64 * p).round() as usize]
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Measures element, chain and whole-table updates of `base`.
fn measure(label: &str, base: &Ruleset, iterations: usize) -> Vec<Samples> {
    let ns = NftNetns::new("nft-bench");
    let table = &base.tables[&calico()];
    let elements: usize = table.sets.values().map(|s| s.elements.len()).sum::<usize>()
        + table.maps.values().map(|m| m.entries.len()).sum::<usize>();
    println!(
        "{label}: {} chains, {} rules, {} set elements and map entries",
        table.chains.len(),
        table.chains.values().map(|c| c.rules.len()).sum::<usize>(),
        elements,
    );
    let cli = NftCli::new(NftCommand::in_netns(ns.netns.path()));
    let mut reconciler = ns.reconciler([calico()]);
    reconciler.apply_blocking(base).expect("initial apply");

    let set = if table.sets["cali40s-web"].elements.len() as u32 >= ELEMENTS {
        ("cali40s-web", Value::addr(Ipv4Addr::new(198, 18, 0, 1)))
    } else {
        (
            "cali40all-hosts",
            Value::net(ipnet::Ipv4Net::new(Ipv4Addr::new(198, 18, 0, 0), 24).expect("prefix")),
        )
    };
    let mut with_element = base.clone();
    with_element
        .table_mut(calico())
        .sets
        .get_mut(set.0)
        .map(std::sync::Arc::make_mut)
        .expect("set")
        .elements
        .insert(set.1);
    let mut with_rule = base.clone();
    with_rule
        .table_mut(calico())
        .chains
        .get_mut("cali-tw-cali00000080")
        .map(std::sync::Arc::make_mut)
        .expect("chain")
        .rules
        .insert(
            0,
            Rule::new()
                .matching(Key::Dport(PortProto::Tcp), Value::port(6443))
                .drop(),
        );

    let mut add = Samples::new(format!("{label}: add one element (diff)"));
    let mut remove = Samples::new(format!("{label}: remove one element (diff)"));
    let mut chain = Samples::new(format!("{label}: change one chain (diff)"));
    let mut full = Samples::new(format!("{label}: whole ruleset (re-create table)"));
    let mut repair = Samples::new(format!("{label}: repair, no drift (list + diff)"));
    let replace = Transaction::replace_all(base).render();
    for _ in 0..iterations {
        // Away from the base ruleset and back, so every variant starts
        // from the same kernel state.
        for (forth, back, changed) in [
            (&mut add, &mut remove, &with_element),
            (&mut chain, &mut Samples::new(""), &with_rule),
        ] {
            for (samples, target) in [(forth, changed), (back, base)] {
                let report = reconciler.apply_blocking(target).expect("apply");
                assert!(!report.read_kernel, "updates must not list the kernel");
                samples.times.push(report.elapsed);
                samples.statements = report.statements;
                samples.bytes = report.script_bytes;
            }
        }

        let start = Instant::now();
        cli.apply_blocking(&replace).expect("full re-apply");
        full.times.push(start.elapsed());
        full.statements = replace.lines().count();
        full.bytes = replace.len();

        let report = reconciler.repair_blocking(base).expect("repair");
        assert_eq!(report.statements, 0, "nothing drifted");
        repair.times.push(report.elapsed);
    }
    reconciler.remove_all_blocking().expect("cleanup");
    vec![add, remove, chain, full, repair]
}

/// The floors: nft doing nothing, and the kernel committing one element or
/// one chain in a table that holds nothing else.
fn floors(iterations: usize) -> Vec<Samples> {
    let ns = NftNetns::new("nft-floor");
    let cli = NftCli::new(NftCommand::in_netns(ns.netns.path()));
    cli.apply_blocking(
        "add table inet floor\nadd set inet floor s { type ipv4_addr; }\nadd chain inet floor c\n",
    )
    .expect("floor table");
    let mut noop = Samples::new("floor: nft -f, no-op statement");
    let mut element = Samples::new("floor: one element, otherwise empty table");
    let mut chain = Samples::new("floor: one chain, otherwise empty table");
    for i in 0..iterations {
        for (samples, script) in [
            (&mut noop, "add table inet floor\n".to_string()),
            (
                &mut element,
                format!(
                    "{} element inet floor s {{ 10.0.0.1 }}\n",
                    if i % 2 == 0 { "add" } else { "delete" }
                ),
            ),
            (
                &mut chain,
                "flush chain inet floor c\nadd rule inet floor c tcp dport 6443 drop\n".to_string(),
            ),
        ] {
            let start = Instant::now();
            cli.apply_blocking(&script).expect("floor");
            samples.times.push(start.elapsed());
            samples.statements = script.lines().count();
            samples.bytes = script.len();
        }
    }
    vec![noop, element, chain]
}

fn main() {
    let iterations: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(30);
    println!("{iterations} iterations");
    let cidrs = ruleset(true);
    let hosts = ruleset(false);
    let mut rows = measure("CIDR set", &cidrs, iterations);
    rows.extend(measure("host set", &hosts, iterations));
    rows.extend(floors(iterations));
    let mut diff = Samples::new("pure diff, no kernel (CIDR ruleset, one element)");
    let mut with_element = cidrs.clone();
    with_element
        .table_mut(calico())
        .sets
        .get_mut("cali40all-hosts")
        .map(std::sync::Arc::make_mut)
        .expect("set")
        .elements
        .insert(Value::addr(Ipv4Addr::new(198, 18, 0, 1)));
    for _ in 0..iterations {
        let start = Instant::now();
        let t = Transaction::diff(&cidrs, &with_element);
        diff.times.push(start.elapsed());
        diff.statements = t.len();
    }
    rows.push(diff);
    let mut validate = Samples::new("pure validation, no kernel (CIDR ruleset)");
    for _ in 0..iterations {
        let start = Instant::now();
        assert!(with_element.validate().is_empty());
        validate.times.push(start.elapsed());
    }
    rows.push(validate);

    println!();
    println!(
        "| {:<52} | {:>11} | {:>8} | {:>10} | {:>10} | {:>8} |",
        "variant", "median (ms)", "p90 (ms)", "statements", "script (B)", "vs whole"
    );
    println!(
        "|{:-<54}|{:->13}|{:->10}|{:->12}|{:->12}|{:->10}|",
        "", "", "", "", "", ""
    );
    let whole = |label: &str| {
        rows.iter()
            .find(|r| r.name.starts_with(label) && r.name.contains("whole"))
            .map(|r| r.percentile(0.5))
    };
    for s in &rows {
        let reference =
            whole(s.name.split(':').next().unwrap_or_default()).or_else(|| whole("CIDR set"));
        let median = s.percentile(0.5);
        let ratio = reference
            .map(|r| r.as_secs_f64() / median.as_secs_f64())
            .unwrap_or(1.0);
        println!(
            "| {:<52} | {:>11.2} | {:>8.2} | {:>10} | {:>10} | {:>7.1}x |",
            s.name,
            ms(median),
            ms(s.percentile(0.9)),
            s.statements,
            s.bytes,
            ratio
        );
    }
}
