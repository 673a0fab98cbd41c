//! Calico's own vectors through the binary: every selector case through
//! `selector match` and `selector check`, every Kubernetes NetworkPolicy
//! conversion case through `convert`.

mod common;

use common::{bare, conformance, run};
use serde_json::{Value, json};

fn calicoctl(args: &[&str]) -> common::Run {
    let mut cmd = bare();
    cmd.args(args);
    run(cmd, None)
}

#[test]
fn selector_match_cases() {
    let cases = conformance("calico_selector_cases.json");
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 98);
    let mut failures = Vec::new();
    for case in cases {
        let selector = case["selector"].as_str().unwrap();
        let labels: Vec<String> = case["labels"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
            .collect();
        let mut args = vec!["selector", "match"];
        let joined = labels.join(",");
        if !labels.is_empty() {
            args.extend(["--labels", &joined]);
        }
        args.extend(["--", selector]);
        let out = calicoctl(&args);
        let want = case["matches"].as_bool().unwrap();
        let (code, text) = if want {
            (0, "match\n")
        } else {
            (1, "no match\n")
        };
        if out.code != code || out.stdout != text {
            failures.push(format!(
                "{selector:?} {labels:?}: exit {} {:?} {:?}",
                out.code, out.stdout, out.stderr
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn selector_invalid_cases() {
    let cases = conformance("calico_selector_invalid_cases.json");
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 45);
    let mut failures = Vec::new();
    for case in cases {
        let selector = case["selector"].as_str().unwrap();
        let check = calicoctl(&["selector", "check", "--", selector]);
        let mut lines = check.stdout.lines();
        let first = lines.next().unwrap_or_default();
        let ok = check.code == 1
            && first.starts_with("invalid: invalid selector at position ")
            && lines.next() == Some(&format!("  {selector}"))
            && lines
                .next()
                .is_some_and(|caret| caret.trim_end().ends_with('^'));
        if !ok {
            failures.push(format!(
                "check {selector:?}: exit {} {:?}",
                check.code, check.stdout
            ));
        }
        // match: a bad selector is exit 2, with the position on stderr.
        let matched = calicoctl(&["selector", "match", "--labels", "a=b", "--", selector]);
        if matched.code != 2 || !matched.stderr.contains("at position") {
            failures.push(format!(
                "match {selector:?}: exit {} {:?}",
                matched.code, matched.stderr
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn selector_canonical_cases() {
    let cases = conformance("calico_selector_canonical_cases.json");
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 17);
    let mut failures = Vec::new();
    for case in cases {
        let selector = case["selector"].as_str().unwrap();
        let out = calicoctl(&["selector", "check", "--", selector]);
        let lines: Vec<&str> = out.stdout.lines().collect();
        let canonical = case["canonical"].as_str().unwrap();
        let mut ok = out.code == 0
            && lines.len() == 3
            && lines[0] == "valid"
            && lines[1] == format!("canonical: {canonical}");
        match case.get("unique_id").and_then(Value::as_str) {
            Some(id) => ok &= lines.get(2) == Some(&format!("unique id: {id}").as_str()),
            None => ok &= lines.get(2).is_some_and(|l| l.starts_with("unique id: s:")),
        }
        if !ok {
            failures.push(format!("{selector:?}: exit {} {:?}", out.code, out.stdout));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn selector_check_shows_where() {
    let out = calicoctl(&["selector", "check", "app == 'web' &&& x"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stdout,
        "invalid: invalid selector at position 15: expected '&&': a single '&' is not an operator\n  app == 'web' &&& x\n                 ^\n"
    );
}

/// A rule as JSON with empty entity rules dropped (the vectors write an
/// empty EntityRule as `{}` or leave it out).
fn normalise_rule(mut v: Value) -> Value {
    if let Value::Object(map) = &mut v {
        map.retain(|_, field| !matches!(field, Value::Object(o) if o.is_empty()));
    }
    v
}

/// `destination.ports[0].String()`, `source.notNets.length`, ...
fn resolve(rule: &Value, path: &str) -> Value {
    let mut cur = rule.clone();
    for part in path.split('.') {
        if part == "length" {
            return json!(cur.as_array().map_or(0, Vec::len));
        }
        if part == "String()" {
            return match cur {
                Value::Number(n) => Value::String(n.to_string()),
                other => other,
            };
        }
        let (field, index) = match part.split_once('[') {
            Some((f, rest)) => (
                f,
                Some(rest.trim_end_matches(']').parse::<usize>().unwrap()),
            ),
            None => (part, None),
        };
        cur = cur.get(field).cloned().unwrap_or(Value::Null);
        if let Some(i) = index {
            cur = cur.get(i).cloned().unwrap_or(Value::Null);
        }
    }
    match cur {
        Value::Null => Value::String(String::new()),
        other => other,
    }
}

fn check_rules(printed: &Value, side: &str, want: &Value) -> Result<(), String> {
    let rules: Vec<Value> = printed["spec"][side]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(normalise_rule)
        .collect();
    if let Some(count) = want.get("count") {
        if json!(rules.len()) != *count {
            return Err(format!("{side} count {} want {count}", rules.len()));
        }
    }
    if let Some(expected) = want.get("consist_of").and_then(Value::as_array) {
        let mut remaining = rules.clone();
        for e in expected.iter().cloned().map(normalise_rule) {
            match remaining.iter().position(|a| *a == e) {
                Some(i) => {
                    remaining.remove(i);
                }
                None => return Err(format!("{side}: no rule {e} in {rules:?}")),
            }
        }
        if !remaining.is_empty() {
            return Err(format!("{side}: extra rules {remaining:?}"));
        }
    }
    for c in want
        .get("checks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let index = c["index"].as_u64().unwrap() as usize;
        let path = c["path"].as_str().unwrap();
        let rule = rules
            .get(index)
            .ok_or_else(|| format!("{side}[{index}] missing"))?;
        let got = resolve(rule, path);
        if got != c["value"] {
            return Err(format!(
                "{side}[{index}].{path}: got {got}, want {}",
                c["value"]
            ));
        }
    }
    Ok(())
}

fn run_convert_case(dir: &std::path::Path, case: &Value) -> Result<(), String> {
    let id = case["id"].as_str().unwrap();
    let input = dir.join(format!("{id}.json"));
    std::fs::write(&input, case["input"].to_string()).unwrap();
    // The vectors test the conversion; some names (upper case) would not
    // pass Calico's validation, so it is skipped here and tested apart.
    let out = calicoctl(&[
        "convert",
        "-f",
        input.to_str().unwrap(),
        "-o",
        "json",
        "--ignore-validation",
    ]);
    let expected = case["expected"].as_object().unwrap();
    let input_name = case["input"]["metadata"]["name"].as_str().unwrap();

    if let Some(error) = expected.get("error") {
        // Calico's convert fails as a whole when a rule cannot be converted.
        if out.code != 1 {
            return Err(format!(
                "want failure, got exit {} {}",
                out.code, out.stdout
            ));
        }
        for rule in error["rules"].as_array().unwrap() {
            let (direction, index) = match rule.get("ingressRuleIndex") {
                Some(i) => ("ingress", i),
                None => ("egress", &rule["egressRuleIndex"]),
            };
            let text = format!(
                "{direction} rule {index} of policy {}: {}",
                error["policyName"].as_str().unwrap(),
                rule["reason"].as_str().unwrap()
            );
            if !out.stderr.contains(&text) {
                return Err(format!("stderr lacks {text:?}: {}", out.stderr));
            }
        }
        return Ok(());
    }
    if out.code != 0 {
        return Err(format!("exit {}: {}", out.code, out.stderr));
    }
    let printed: Value =
        serde_json::from_str(&out.stdout).map_err(|e| format!("output is not JSON: {e}"))?;
    let check = |what: &str, got: &Value, want: &Value| {
        if got == want {
            Ok(())
        } else {
            Err(format!("{what}: got {got}, want {want}"))
        }
    };
    check("kind", &printed["kind"], &json!("NetworkPolicy"))?;
    check(
        "apiVersion",
        &printed["apiVersion"],
        &json!("projectcalico.org/v3"),
    )?;
    check("tier", &printed["spec"]["tier"], &json!("default"))?;
    // calicoctl convert prints the Kubernetes name, without cluster data.
    check("name", &printed["metadata"]["name"], &json!(input_name))?;
    check(
        "creationTimestamp",
        &printed["metadata"]["creationTimestamp"],
        &Value::Null,
    )?;
    if printed["metadata"].get("uid").is_some()
        || printed["metadata"].get("resourceVersion").is_some()
    {
        return Err(format!("cluster metadata printed: {}", printed["metadata"]));
    }
    for (key, want) in expected {
        match key.as_str() {
            // kube-controllers' stored name is the printed one, prefixed.
            "key_name" | "name" if id.starts_with("kc-") => {
                check(key, &json!(format!("knp.default.{input_name}")), want)?
            }
            "key_name" | "name" => check(key, &printed["metadata"]["name"], want)?,
            "key_namespace" | "namespace" => check(key, &printed["metadata"]["namespace"], want)?,
            "order" => {
                if printed["spec"]["order"].as_f64() != want.as_f64() {
                    return Err(format!(
                        "order: got {}, want {want}",
                        printed["spec"]["order"]
                    ));
                }
            }
            "selector" => check(key, &printed["spec"]["selector"], want)?,
            "types" => check(key, &printed["spec"]["types"], want)?,
            "kind" | "apiVersion" => {}
            "ingress" | "egress" => check_rules(&printed, key, want)?,
            other => return Err(format!("unknown expectation {other}")),
        }
    }
    Ok(())
}

#[test]
fn convert_knp_cases() {
    let cases = conformance("knp_conversion_cases.json");
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 39);
    let dir = tempfile::tempdir().unwrap();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            run_convert_case(dir.path(), case)
                .err()
                .map(|e| format!("{}: {e}", case["id"]))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

const KNP: &str = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-web
  namespace: prod
  uid: 30316465-6365-4463-ad63-3564622d3638
  resourceVersion: \"123\"
spec:
  podSelector:
    matchLabels:
      app: web
  ingress:
  - ports:
    - port: 80
";

/// What calicoctl's `convert` prints for [`KNP`]. The calicoctl releases
/// that had `convert` wrote a rule's empty `source` and `destination` as
/// `{}`.
const KNP_CONVERTED: &str = "\
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  creationTimestamp: null
  name: allow-web
  namespace: prod
spec:
  ingress:
  - action: Allow
    destination:
      ports:
      - 80
    protocol: TCP
    source: {}
  order: 1000
  selector: projectcalico.org/orchestrator == 'k8s' && app == 'web'
  tier: default
  types:
  - Ingress
";

#[test]
fn convert_prints_calicos_yaml_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("knp.yaml");
    std::fs::write(&file, KNP).unwrap();
    let out = calicoctl(&["convert", "-f", file.to_str().unwrap()]).ok();
    assert_eq!(out.stdout, KNP_CONVERTED);
}

#[test]
fn convert_prints_yaml_validates_and_lists() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("knp.yaml");
    std::fs::write(&file, KNP).unwrap();
    // JSON keeps Go's field order: the sides after the protocol.
    let one = calicoctl(&["convert", "-f", file.to_str().unwrap(), "-o", "json"])
        .ok()
        .json();
    let rule = one["spec"]["ingress"][0].as_object().unwrap();
    assert_eq!(
        rule.keys().collect::<Vec<_>>(),
        ["action", "protocol", "source", "destination"]
    );
    assert_eq!(rule["source"], json!({}));
    let egress = KNP.replace(
        "  ingress:\n  - ports:\n    - port: 80\n",
        "  egress:\n  - {}\n",
    );
    std::fs::write(&file, egress).unwrap();
    let out = calicoctl(&["convert", "-f", file.to_str().unwrap()]).ok();
    assert!(
        out.stdout
            .contains("  egress:\n  - action: Allow\n    destination: {}\n    source: {}\n"),
        "{}",
        out.stdout
    );

    // Two policies: a v1 List.
    let two = format!("{KNP}---\n{}", KNP.replace("allow-web", "allow-db"));
    std::fs::write(&file, two).unwrap();
    let list = calicoctl(&["convert", "-f", file.to_str().unwrap(), "-o", "json"])
        .ok()
        .json();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(list["metadata"], json!({}));
    assert_eq!(list["items"][1]["metadata"]["name"], "allow-db");
    // Validation runs unless told not to.
    std::fs::write(&file, KNP.replace("allow-web", "Allow_Web")).unwrap();
    let err = calicoctl(&["convert", "-f", file.to_str().unwrap()]).failed();
    assert!(
        err.stderr
            .starts_with("converted manifest resource(s) failed validation: metadata.name"),
        "{}",
        err.stderr
    );
    assert!(err.stderr.contains("--ignore-validation"), "{}", err.stderr);
    calicoctl(&[
        "convert",
        "-f",
        file.to_str().unwrap(),
        "--ignore-validation",
    ])
    .ok();
    // Only Kubernetes policies convert.
    std::fs::write(
        &file,
        "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata:\n  name: t\n",
    )
    .unwrap();
    let err = calicoctl(&["convert", "-f", file.to_str().unwrap()]).failed();
    assert!(
        err.stderr
            .contains("conversion for the resource type 'Tier' is not supported"),
        "{}",
        err.stderr
    );
}
