//! Runs every selector vector from Calico's own test tables
//! (`shared/conformance/calico_selector_*.json`, beside the repository).

use std::collections::BTreeMap;
use std::path::PathBuf;

use calico_selector::Selector;
use serde::Deserialize;

fn conformance_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[derive(Deserialize)]
struct MatchCase {
    selector: String,
    labels: BTreeMap<String, String>,
    matches: bool,
}

#[derive(Deserialize)]
struct InvalidCase {
    selector: String,
    valid: bool,
    source: String,
}

#[derive(Deserialize)]
struct CanonicalCase {
    selector: String,
    canonical: String,
    unique_id: Option<String>,
}

#[test]
fn calico_match_vectors() {
    let cases: Vec<MatchCase> =
        serde_json::from_str(&conformance_file("calico_selector_cases.json")).unwrap();
    assert_eq!(cases.len(), 98, "the file documents 98 cases");
    let mut failures = Vec::new();
    for case in &cases {
        match Selector::parse(&case.selector) {
            Ok(sel) => {
                if sel.evaluate(&case.labels) != case.matches {
                    failures.push(format!(
                        "{:?} on {:?}: expected {}, got {}",
                        case.selector, case.labels, case.matches, !case.matches
                    ));
                }
                // Calico's canonical form must select the same items.
                let reparsed = Selector::parse(&sel.canonical()).unwrap();
                assert_eq!(
                    reparsed.evaluate(&case.labels),
                    case.matches,
                    "{:?}",
                    sel.canonical()
                );
            }
            Err(e) => failures.push(format!("{:?} failed to parse: {e}", case.selector)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn calico_invalid_vectors() {
    let cases: Vec<InvalidCase> =
        serde_json::from_str(&conformance_file("calico_selector_invalid_cases.json")).unwrap();
    assert_eq!(cases.len(), 45, "the file documents 45 cases");
    let mut failures = Vec::new();
    for case in &cases {
        assert!(!case.valid, "{:?} is listed as valid", case.selector);
        match Selector::parse(&case.selector) {
            Ok(sel) => failures.push(format!(
                "{:?} (from {}) parsed as {:?}",
                case.selector, case.source, sel
            )),
            Err(e) => assert!(
                e.position <= case.selector.len() && !e.message.is_empty(),
                "{:?}: {e:?}",
                case.selector
            ),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn calico_canonical_vectors() {
    let cases: Vec<CanonicalCase> =
        serde_json::from_str(&conformance_file("calico_selector_canonical_cases.json")).unwrap();
    assert_eq!(cases.len(), 17, "the file documents 17 cases");
    let mut with_uid = 0;
    for case in &cases {
        let sel =
            Selector::parse(&case.selector).unwrap_or_else(|e| panic!("{:?}: {e}", case.selector));
        assert_eq!(
            sel.canonical(),
            case.canonical,
            "canonical form of {:?}",
            case.selector
        );
        let round_tripped = Selector::parse(&sel.canonical()).unwrap();
        assert_eq!(
            round_tripped.canonical(),
            case.canonical,
            "round trip of {:?}",
            case.selector
        );
        assert_eq!(round_tripped.unique_id(), sel.unique_id());
        if let Some(uid) = &case.unique_id {
            with_uid += 1;
            assert_eq!(&sel.unique_id(), uid, "unique ID of {:?}", case.selector);
        }
    }
    assert_eq!(with_uid, 5, "the file states five unique IDs");
}
