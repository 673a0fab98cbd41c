//! Runs Calico's own Kubernetes NetworkPolicy conversion vectors
//! (`shared/conformance/knp_*.json`, copied from Calico's Go tests).

use std::path::PathBuf;

use calico_model::k8s::{LabelSelector, NetworkPolicy as K8sNetworkPolicy};
use calico_model::{NetworkPolicy, Rule};
use calico_policy::knp::{self, Direction, SelectorKind};
use serde_json::{Value, json};

fn conformance_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
}

fn load(name: &str) -> Value {
    let path = conformance_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// A rule as JSON, with empty entity rules dropped (the files write an
/// empty EntityRule as `{}` or leave it out).
fn normalise_rule(mut v: Value) -> Value {
    if let Value::Object(map) = &mut v {
        map.retain(|_, field| !matches!(field, Value::Object(o) if o.is_empty()));
    }
    v
}

fn rules_of<'a>(policy: &'a NetworkPolicy, side: &str) -> &'a [Rule] {
    match side {
        "ingress" => &policy.spec.ingress,
        "egress" => &policy.spec.egress,
        other => panic!("unknown side {other}"),
    }
}

/// Resolves paths such as `source.notNets[1]`, `destination.ports.length`
/// and `destination.ports[0].String()` against a rule's JSON. Absent fields
/// read as Go's zero values.
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

#[test]
fn knp_conversion_cases() {
    let cases = load("knp_conversion_cases.json");
    let cases = cases.as_array().expect("array of cases");
    assert_eq!(cases.len(), 39, "case count changed");
    let mut failures = Vec::new();
    for case in cases {
        let id = case["id"].as_str().unwrap();
        if let Err(msg) = run_case(case) {
            failures.push(format!("{id}: {msg}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn run_case(case: &Value) -> Result<(), String> {
    let id = case["id"].as_str().unwrap();
    // apiVersion and kind belong to the document layer, not the typed body.
    let mut input = case["input"].clone();
    let body = input.as_object_mut().unwrap();
    if body.remove("apiVersion") != Some(json!("networking.k8s.io/v1"))
        || body.remove("kind") != Some(json!("NetworkPolicy"))
    {
        return Err("input is not a networking.k8s.io/v1 NetworkPolicy".into());
    }
    let input: K8sNetworkPolicy =
        serde_json::from_value(input).map_err(|e| format!("input does not parse: {e}"))?;
    let converted = if id.starts_with("kc-") {
        knp::convert_for_etcd(&input)
    } else {
        knp::convert(&input)
    }
    .map_err(|e| format!("conversion failed: {e}"))?;
    let policy = &converted.policy;
    let expected = case["expected"].as_object().unwrap();

    let check = |what: &str, actual: Value, want: &Value| -> Result<(), String> {
        if &actual == want {
            Ok(())
        } else {
            Err(format!("{what}: got {actual}, want {want}"))
        }
    };

    for (key, want) in expected {
        match key.as_str() {
            "key_name" | "name" => check(key, json!(policy.metadata.name), want)?,
            "key_namespace" | "namespace" => check(key, json!(policy.metadata.namespace), want)?,
            "order" => {
                let want = want.as_f64().ok_or("order is not a number")?;
                if policy.spec.order != Some(want) {
                    return Err(format!("order: got {:?}, want {want}", policy.spec.order));
                }
            }
            "selector" => check(key, json!(policy.spec.selector), want)?,
            "types" => check(key, serde_json::to_value(&policy.spec.types).unwrap(), want)?,
            // The Rust type of the result is the kind; nothing to compare.
            "kind" | "apiVersion" => {}
            "ingress" | "egress" => check_rules(rules_of(policy, key), key, want)?,
            "error" => check_error(&converted.dropped_rules, want)?,
            other => return Err(format!("unknown expectation {other}")),
        }
    }
    // Not asserted by the Go tests, but set by the converter.
    check("tier", json!(policy.spec.tier), &json!("default"))?;
    if !expected.contains_key("error") && !converted.dropped_rules.is_empty() {
        return Err(format!(
            "unexpected dropped rules {:?}",
            converted.dropped_rules
        ));
    }
    Ok(())
}

fn check_rules(rules: &[Rule], side: &str, want: &Value) -> Result<(), String> {
    let actual: Vec<Value> = rules
        .iter()
        .map(|r| normalise_rule(serde_json::to_value(r).unwrap()))
        .collect();
    if let Some(count) = want.get("count") {
        if json!(actual.len()) != *count {
            return Err(format!("{side} count: got {}, want {count}", actual.len()));
        }
    }
    if let Some(expected) = want.get("consist_of") {
        let expected: Vec<Value> = expected
            .as_array()
            .unwrap()
            .iter()
            .cloned()
            .map(normalise_rule)
            .collect();
        let mut remaining = actual.clone();
        for e in &expected {
            match remaining.iter().position(|a| a == e) {
                Some(i) => {
                    remaining.remove(i);
                }
                None => return Err(format!("{side}: no rule equal to {e} in {actual:?}")),
            }
        }
        if !remaining.is_empty() {
            return Err(format!("{side}: unexpected extra rules {remaining:?}"));
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
        let rule = actual
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

fn check_error(dropped: &[knp::DroppedRule], want: &Value) -> Result<(), String> {
    let want_rules = want["rules"].as_array().unwrap();
    if dropped.len() != want_rules.len() {
        return Err(format!(
            "dropped {} rules, want {}",
            dropped.len(),
            want_rules.len()
        ));
    }
    for (d, w) in dropped.iter().zip(want_rules) {
        if d.policy != want["policyName"].as_str().unwrap() {
            return Err(format!("error policy name {}", d.policy));
        }
        let (dir, index) = if let Some(i) = w.get("ingressRuleIndex") {
            (Direction::Ingress, i)
        } else {
            (Direction::Egress, &w["egressRuleIndex"])
        };
        if d.direction != dir || json!(d.index) != *index {
            return Err(format!(
                "dropped {} rule {}, want {dir} rule {index}",
                d.direction, d.index
            ));
        }
        if d.reason != w["reason"].as_str().unwrap() {
            return Err(format!("reason {:?}, want {:?}", d.reason, w["reason"]));
        }
    }
    Ok(())
}

#[test]
fn knp_selector_helper_table() {
    let helpers = load("knp_selector_and_port_helpers.json");
    let rows = helpers["k8sSelectorToCalico"].as_array().unwrap();
    assert_eq!(rows.len(), 9);
    for row in rows {
        let selector: Option<LabelSelector> =
            serde_json::from_value(row["labelSelector"].clone()).unwrap();
        let kind = match row["selectorType"].as_str().unwrap() {
            "pod" => SelectorKind::Pod,
            "namespace" => SelectorKind::Namespace,
            other => panic!("selector type {other}"),
        };
        assert_eq!(
            knp::k8s_selector_to_calico(selector.as_ref(), kind),
            row["expected"].as_str().unwrap(),
            "{row}"
        );
    }
}

#[test]
fn knp_simplify_ports_table() {
    let helpers = load("knp_selector_and_port_helpers.json");
    let rows = helpers["SimplifyPorts"].as_array().unwrap();
    assert_eq!(rows.len(), 12);
    for row in rows {
        let input = row["input"].as_str().unwrap();
        let ports: Vec<_> = if input.is_empty() {
            Vec::new()
        } else {
            input
                .split(',')
                .map(|p| knp::port_from_string(p).unwrap())
                .collect()
        };
        let out: Vec<String> = knp::simplify_ports(&ports)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            out.join(","),
            row["expected"].as_str().unwrap(),
            "input {input}"
        );
    }
}
