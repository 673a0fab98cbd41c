//! Golden files: the scripts sent for the sample ruleset and for typical
//! updates. A change in rendering or ordering shows up as a diff of these
//! files; when it is intended, regenerate them with
//!
//!     UPDATE_GOLDEN=1 cargo test -p calico-nftables --test golden

mod common;

use std::path::PathBuf;

use calico_nftables::{IpFamily, Key, Rhs, Rule, Ruleset, Transaction, Value};
use common::{calico, sample_ruleset};

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("writing golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the golden file at line {}:\n  golden: {:?}\n  actual: {:?}\n\
             (UPDATE_GOLDEN=1 regenerates it if the change is intended)",
            path.display(),
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

fn workload_chain<'a>(ruleset: &'a mut Ruleset, iface: &str) -> &'a mut calico_nftables::Chain {
    ruleset
        .table_mut(calico())
        .chains
        .get_mut(&format!("cali-tw-{iface}"))
        .map(std::sync::Arc::make_mut)
        .expect("workload chain")
}

#[test]
fn create_from_scratch() {
    let desired = sample_ruleset(2);
    check("create.nft", &Transaction::create(&desired).render());
}

#[test]
fn replace_all() {
    check(
        "replace-all.nft",
        &Transaction::replace_all(&sample_ruleset(1)).render(),
    );
}

#[test]
fn one_set_element_added_and_one_removed() {
    let current = sample_ruleset(2);
    let mut desired = current.clone();
    let hosts = &mut desired
        .table_mut(calico())
        .sets
        .get_mut("cali40all-hosts")
        .map(std::sync::Arc::make_mut)
        .expect("set")
        .elements;
    hosts.remove(&common::v4("10.0.1.0/24"));
    hosts.insert(common::v4("10.0.2.0/23"));
    check(
        "update-elements.nft",
        &Transaction::diff(&current, &desired).render(),
    );
}

#[test]
fn one_policy_rule_changed() {
    let current = sample_ruleset(2);
    let mut desired = current.clone();
    let policy = desired
        .table_mut(calico())
        .chains
        .get_mut("cali-pi-default.web")
        .map(std::sync::Arc::make_mut)
        .expect("policy chain");
    policy.rules[0] = Rule::new()
        .matching(Key::Saddr(IpFamily::V4), Rhs::set("cali40all-hosts"))
        .matching(
            Key::Dport(calico_nftables::PortProto::Tcp),
            Rhs::any_of([Value::port(80), Value::port(443), Value::port(8443)]),
        )
        .set_mark(common::MARK_ACCEPT, common::MARK_ACCEPT)
        .ret()
        .comment("Policy default.web ingress");
    check(
        "update-chain.nft",
        &Transaction::diff(&current, &desired).render(),
    );
}

#[test]
fn workload_added_and_removed() {
    let current = sample_ruleset(2);
    // Workload 0 goes away, workloads 1 and 2 remain or arrive: the sample
    // for three workloads minus the first one's objects.
    let mut desired = sample_ruleset(3);
    let table = desired.table_mut(calico());
    let gone = "cali00000000";
    table.chains.remove(&format!("cali-tw-{gone}"));
    table.chains.remove(&format!("cali-fw-{gone}"));
    for map in table.maps.values_mut() {
        std::sync::Arc::make_mut(map)
            .entries
            .remove(&Value::name(gone));
    }
    workload_chain(&mut desired, "cali00000002").rules.pop();
    check(
        "update-workloads.nft",
        &Transaction::diff(&current, &desired).render(),
    );
}

#[test]
fn remove_everything() {
    check(
        "remove.nft",
        &Transaction::diff(&sample_ruleset(1), &Ruleset::new()).render(),
    );
}
