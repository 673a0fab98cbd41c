//! Whole pipeline: manifests in, the rendered dataplane out, compared with
//! `tests/golden/<name>.golden`. Set `UPDATE_GOLDEN=1` to rewrite the
//! golden files after an intended change. Each input is also applied in
//! reverse and in two batches, which must give the same result.

use std::path::{Path, PathBuf};

use calico_model::document::parse_resources;
use calico_policy::{EngineConfig, PolicyEngine, Update};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn updates(path: &Path) -> Vec<Update> {
    let text = std::fs::read_to_string(path).unwrap();
    parse_resources(&path.display().to_string(), &text)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|r| Update::from_resource(r).expect("a kind the engine uses"))
        .collect()
}

fn run(config: &EngineConfig, updates: Vec<Update>) -> String {
    let mut engine = PolicyEngine::new(config.clone());
    let (_, errors) = engine.apply_all(updates);
    assert!(errors.is_empty(), "{errors:?}");
    engine.snapshot().to_string()
}

#[test]
fn golden_pipelines() {
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty());
    for input in inputs {
        for (extension, config) in [
            ("golden", EngineConfig::default()),
            (
                "node1.golden",
                EngineConfig {
                    local_node: Some("node1".into()),
                    ..EngineConfig::default()
                },
            ),
        ] {
            let ups = updates(&input);
            let out = run(&config, ups.clone());
            let reversed = run(&config, ups.iter().rev().cloned().collect());
            assert_eq!(out, reversed, "{}: order matters", input.display());
            let mut engine = PolicyEngine::new(config.clone());
            let (first, second) = ups.split_at(ups.len() / 2);
            engine.apply_all(second.to_vec());
            engine.apply_all(first.to_vec());
            assert_eq!(
                out,
                engine.snapshot().to_string(),
                "{}: batching matters",
                input.display()
            );

            let golden = input.with_extension(extension);
            if std::env::var_os("UPDATE_GOLDEN").is_some() {
                std::fs::write(&golden, &out).unwrap();
            }
            let want = std::fs::read_to_string(&golden)
                .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", golden.display()));
            assert_eq!(
                out,
                want,
                "{} differs from {}",
                input.display(),
                golden.display()
            );
        }
    }
}
