//! Whole-pipeline tests over the sample manifests in `tests/data`:
//!
//! - `valid/*`: every document parses, takes Calico's defaults, validates,
//!   and prints (calicoctl's YAML) exactly as `golden/<file>.yaml`; the
//!   printed YAML and the JSON form both read back to the same resources.
//!   Regenerate the golden files with `UPDATE_GOLDEN=1 cargo test -p calico-model`.
//! - `invalid/*`: `# error: <text>` lines must appear in the parse error;
//!   `# invalid: <text>` lines each in the validation errors.

use std::fs;
use std::path::{Path, PathBuf};

use calico_model::document::{OutputFormat, parse_documents, print};
use calico_model::resource::AnyResource;

fn data(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(dir);
    let mut files: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no files in {}", root.display());
    files
}

fn name_of(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn valid_manifests_default_validate_and_match_golden() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for path in data("valid") {
        let name = name_of(&path);
        let text = fs::read_to_string(&path).unwrap();
        let docs = parse_documents(&name, &text).unwrap_or_else(|e| panic!("{e}"));
        assert!(!docs.is_empty(), "{name}: no resources");
        let mut resources: Vec<AnyResource> = docs.into_iter().map(|d| d.resource).collect();
        for r in &mut resources {
            r.apply_defaults();
            if let Err(e) = r.validate() {
                panic!("{name}: {} {}: {e}", r.kind(), r.display_name());
            }
        }

        let values: Vec<_> = resources.iter().map(AnyResource::to_json_value).collect();
        let printed = print(&values, OutputFormat::Yaml);
        let golden = path
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("golden")
            .join(Path::new(&name).with_extension("yaml").file_name().unwrap());
        if update {
            fs::write(&golden, &printed).unwrap();
        } else {
            let want = fs::read_to_string(&golden)
                .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", golden.display()));
            assert_eq!(
                printed,
                want,
                "{name}: output differs from {}",
                golden.display()
            );
        }

        // YAML -> struct -> YAML -> struct.
        let again: Vec<AnyResource> = parse_documents("golden", &printed)
            .unwrap_or_else(|e| panic!("{name}: reading printed YAML: {e}"))
            .into_iter()
            .map(|d| d.resource)
            .collect();
        assert_eq!(again, resources, "{name}: YAML round trip");

        // struct -> JSON -> struct, and the JSON printer's output too.
        for (r, v) in resources.iter().zip(&values) {
            assert_eq!(
                &AnyResource::from_json_value(v.clone()).unwrap(),
                r,
                "{name}: JSON round trip"
            );
        }
        let json = print(&values, OutputFormat::Json);
        let from_json: Vec<AnyResource> = parse_documents("json", &json)
            .unwrap_or_else(|e| panic!("{name}: reading printed JSON: {e}"))
            .into_iter()
            .map(|d| d.resource)
            .collect();
        assert_eq!(from_json, resources, "{name}: printed JSON round trip");
    }
}

fn expectations(text: &str, tag: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix(&format!("# {tag}: ")))
        .map(str::to_string)
        .collect()
}

#[test]
fn invalid_manifests_report_what_is_wrong() {
    for path in data("invalid") {
        let name = name_of(&path);
        let text = fs::read_to_string(&path).unwrap();
        let parse_errors = expectations(&text, "error");
        let validation_errors = expectations(&text, "invalid");
        assert!(
            parse_errors.is_empty() != validation_errors.is_empty(),
            "{name}: needs '# error:' or '# invalid:' lines"
        );
        match parse_documents(&name, &text) {
            Err(e) => {
                assert!(
                    !parse_errors.is_empty(),
                    "{name}: unexpected parse error {e}"
                );
                let shown = e.to_string();
                assert!(shown.starts_with(&name), "{shown}");
                for want in &parse_errors {
                    assert!(
                        shown.contains(want.as_str()),
                        "{name}: got {shown:?}, want {want:?}"
                    );
                }
            }
            Ok(docs) => {
                assert!(
                    parse_errors.is_empty(),
                    "{name}: parsed but expected {parse_errors:?}"
                );
                let mut all = String::new();
                for d in docs {
                    let mut r = d.resource;
                    r.apply_defaults();
                    if let Err(e) = r.validate() {
                        all.push_str(&e.to_string());
                    }
                }
                for want in &validation_errors {
                    assert!(
                        all.contains(want.as_str()),
                        "{name}: got {all:?}, want {want:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn parse_errors_carry_line_numbers() {
    let path = data("invalid")
        .into_iter()
        .find(|p| name_of(p) == "unknown-field.yaml")
        .unwrap();
    let text = fs::read_to_string(&path).unwrap();
    let e = parse_documents("unknown-field.yaml", &text).unwrap_err();
    assert_eq!(e.document, Some(1));
    assert_eq!(e.path.as_deref(), Some("spec.ingress[0].destination.portz"));
    let line = text
        .lines()
        .position(|l| l.trim_start().starts_with("portz:"))
        .unwrap()
        + 1;
    assert_eq!(e.line, Some(line));
}

#[test]
fn list_printed_as_calicoctl_prints_it() {
    let path = data("valid")
        .into_iter()
        .find(|p| name_of(p) == "list-output.yaml")
        .unwrap();
    let text = fs::read_to_string(&path).unwrap();
    let resources: Vec<AnyResource> = parse_documents("list-output.yaml", &text)
        .unwrap()
        .into_iter()
        .map(|d| d.resource)
        .collect();
    let list =
        calico_model::document::list_value(calico_model::kind::Kind::IpPool, &resources, "731");
    let printed = print(&[list], OutputFormat::Yaml);
    let without_comments: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(printed, without_comments);
}
