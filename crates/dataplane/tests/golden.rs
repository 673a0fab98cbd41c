//! Golden files: fixed clusters in, the generated ruleset out, as the nft
//! script that would create it (`tests/golden/<case>.nft`). Regenerate
//! with `UPDATE_GOLDEN=1 cargo test -p calico-dataplane --test golden` when
//! a change is intended, and read the difference.

mod support;

use std::path::PathBuf;

use calico_dataplane::generate_with_report;
use calico_nftables::Transaction;

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.nft"))
}

#[test]
fn generated_rulesets_match_the_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut stale = Vec::new();
    for fixture in support::fixtures::all() {
        let generation = generate_with_report(&fixture.dataplane(), &fixture.config);
        assert!(
            generation.skipped.is_empty(),
            "{}: {:?}",
            fixture.name,
            generation.skipped
        );
        let problems = generation.ruleset.validate();
        assert!(problems.is_empty(), "{}: {problems:?}", fixture.name);
        let text = Transaction::create(&generation.ruleset).render();
        let path = golden_path(fixture.name);
        if update {
            std::fs::write(&path, &text).expect("writing the golden file");
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
                path.display()
            )
        });
        if want != text {
            let line = want
                .lines()
                .zip(text.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(want.lines().count().min(text.lines().count()));
            stale.push(format!(
                "{}: first difference at line {}:\n  golden:    {}\n  generated: {}",
                fixture.name,
                line + 1,
                want.lines().nth(line).unwrap_or("<end>"),
                text.lines().nth(line).unwrap_or("<end>"),
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "generated rulesets differ from the golden files (UPDATE_GOLDEN=1 regenerates them):\n{}",
        stale.join("\n")
    );
}
