//! Parse and evaluate cost of a typical five-clause policy selector.

use std::collections::BTreeMap;
use std::hint::black_box;

use calico_selector::Selector;
use criterion::{Criterion, criterion_group, criterion_main};

const SELECTOR: &str = "app == 'frontend' && tier in {'web', 'edge'} && !has(quarantine) \
                        && projectcalico.org/namespace starts with 'prod-' && version != 'v1'";

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn bench(c: &mut Criterion) {
    c.bench_function("parse 5-clause selector", |b| {
        b.iter(|| Selector::parse(black_box(SELECTOR)).unwrap())
    });

    let sel = Selector::parse(SELECTOR).unwrap();
    let matching = labels(&[
        ("app", "frontend"),
        ("tier", "web"),
        ("projectcalico.org/namespace", "prod-eu"),
        ("version", "v2"),
        ("pod-template-hash", "5d8f7c9b4"),
        ("projectcalico.org/orchestrator", "k8s"),
    ]);
    let early_miss = labels(&[("app", "backend"), ("tier", "web")]);
    c.bench_function("evaluate 5-clause selector (match)", |b| {
        b.iter(|| sel.evaluate(black_box(&matching)))
    });
    c.bench_function("evaluate 5-clause selector (first clause misses)", |b| {
        b.iter(|| sel.evaluate(black_box(&early_miss)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
