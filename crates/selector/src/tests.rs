//! Table-driven tests of the public behaviour: operators, whitespace,
//! canonical text, error positions.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::*;

/// A label map written as `(key, value)` pairs.
type Pairs<'a> = &'a [(&'a str, &'a str)];

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn eval(selector: &str, pairs: &[(&str, &str)]) -> bool {
    Selector::parse(selector)
        .unwrap_or_else(|e| panic!("{selector:?}: {e}"))
        .evaluate(&labels(pairs))
}

#[test]
fn each_operator_with_present_and_missing_label() {
    // (selector, labels, expected)
    let cases: &[(&str, Pairs<'_>, bool)] = &[
        ("a == 'x'", &[("a", "x")], true),
        ("a == 'x'", &[("a", "y")], false),
        ("a == 'x'", &[], false),
        ("a == ''", &[("a", "")], true),
        ("a == ''", &[], false),
        ("a != 'x'", &[("a", "x")], false),
        ("a != 'x'", &[("a", "y")], true),
        ("a != 'x'", &[], true),
        ("has(a)", &[("a", "")], true),
        ("has(a)", &[("b", "a")], false),
        ("!has(a)", &[], true),
        ("! has(a)", &[("a", "1")], false),
        ("a contains 'ell'", &[("a", "hello")], true),
        ("a contains 'ell'", &[("a", "help")], false),
        ("a contains ''", &[("a", "")], true),
        ("a contains ''", &[], false),
        ("a starts with 'he'", &[("a", "hello")], true),
        ("a starts with 'he'", &[("a", "the")], false),
        ("a starts with 'he'", &[], false),
        ("a ends with 'lo'", &[("a", "hello")], true),
        ("a ends with 'lo'", &[("a", "lot")], false),
        ("a ends with 'lo'", &[], false),
        ("a in {'x', 'y'}", &[("a", "y")], true),
        ("a in {'x', 'y'}", &[("a", "z")], false),
        ("a in {'x', 'y'}", &[], false),
        ("a in {}", &[("a", "")], false),
        ("a not in {'x', 'y'}", &[("a", "y")], false),
        ("a not in {'x', 'y'}", &[("a", "z")], true),
        ("a not in {'x', 'y'}", &[], true),
        ("a not in {}", &[], true),
        ("all()", &[("a", "b")], true),
        ("!all()", &[], false),
        // global() matches everything at this level; the policy layer
        // gives it the "not namespaced" meaning by rewriting it.
        ("global()", &[("projectcalico.org/namespace", "ns1")], true),
        ("global()", &[], true),
        ("a == 'x' && b == 'y'", &[("a", "x"), ("b", "y")], true),
        ("a == 'x' && b == 'y'", &[("a", "x")], false),
        ("a == 'x' || b == 'y'", &[("b", "y")], true),
        ("a == 'x' || b == 'y'", &[], false),
        // && binds tighter than ||.
        ("a == 'x' || b == 'y' && c == 'z'", &[("a", "x")], true),
        ("(a == 'x' || b == 'y') && c == 'z'", &[("a", "x")], false),
        // ! applies to one operation, not to the whole && chain.
        ("!a == 'x' && has(b)", &[("b", "1")], true),
        ("!(a == 'x' && has(b))", &[("b", "1")], true),
        ("!(a == 'x' && has(b))", &[("a", "x"), ("b", "1")], false),
        // Keys with prefixes and every allowed character.
        (
            "projectcalico.org/namespace == 'ns1'",
            &[("projectcalico.org/namespace", "ns1")],
            true,
        ),
        ("k8s-app_v1.2/x == 'v'", &[("k8s-app_v1.2/x", "v")], true),
        ("9 == 'v'", &[("9", "v")], true),
        // Evaluation is case-sensitive.
        ("a == 'X'", &[("a", "x")], false),
        ("A == 'x'", &[("a", "x")], false),
    ];
    for (selector, pairs, want) in cases {
        assert_eq!(eval(selector, pairs), *want, "{selector:?} on {pairs:?}");
    }
}

#[test]
fn whitespace_variations_parse_to_the_same_selector() {
    let groups: &[(&str, &[&str])] = &[
        (
            "a starts with \"x\"",
            &[
                "a starts with 'x'",
                "a startswith 'x'",
                "a starts \t  with'x'",
                "a\tstarts\twith\t'x'",
            ],
        ),
        (
            "a ends with \"x\"",
            &["a ends with 'x'", "a endswith 'x'", "a ends  with 'x'"],
        ),
        (
            "a not in {\"x\"}",
            &[
                "a not in {'x'}",
                "a notin {'x'}",
                "a not\tin{ 'x' }",
                "a not in {'x',}",
            ],
        ),
        (
            "a in {\"x\"}",
            &["a in {'x'}", "a in{'x'}", "a\tin\t{\t'x'\t}"],
        ),
        (
            "a contains \"x\"",
            &["a contains 'x'", "a contains'x'", "a  contains  \"x\""],
        ),
        ("a == \"x\"", &["a=='x'", " a == 'x' ", "\ta\t==\t'x'\t"]),
        (
            "!has(a)",
            &[
                "!has(a)",
                "! has(a)",
                "!has( a )",
                "!\thas(\ta\t)",
                "!!!has(a)",
            ],
        ),
        (
            "all()",
            &["", " ", "\t", "all()", "all( )", " ( all() ) ", "((all()))"],
        ),
        ("global()", &["global()", "global(\t)", " global() "]),
        (
            "(has(a) && has(b))",
            &["has(a)&&has(b)", "has(a) &&  has(b)", "(has(a) && has(b))"],
        ),
    ];
    for (canonical, spellings) in groups {
        for spelling in *spellings {
            let sel = Selector::parse(spelling).unwrap_or_else(|e| panic!("{spelling:?}: {e}"));
            assert_eq!(sel.canonical(), *canonical, "spelling {spelling:?}");
        }
    }
}

#[test]
fn only_spaces_and_tabs_are_whitespace() {
    for input in ["a == 'x'\n", "\na == 'x'", "a\r== 'x'", "has(a)\u{a0}"] {
        assert!(
            Selector::parse(input).is_err(),
            "{input:?} should be rejected"
        );
    }
}

#[test]
fn canonical_form_matches_calico() {
    let cases: &[(&str, &str)] = &[
        ("a == 'x' && b != \"y\"", "(a == \"x\" && b != \"y\")"),
        (
            "a == 'x' || b == 'y' && c == 'z'",
            "(a == \"x\" || (b == \"y\" && c == \"z\"))",
        ),
        ("((a == 'x'))", "a == \"x\""),
        (
            "(a == 'x' && b == 'y') && c == 'z'",
            "((a == \"x\" && b == \"y\") && c == \"z\")",
        ),
        ("!(a == 'x' || b == 'y')", "!(a == \"x\" || b == \"y\")"),
        ("a == 'say \"hi\"'", "a == 'say \"hi\"'"),
        ("a in {'b', \"a\", 'a'}", "a in {\"a\", \"b\"}"),
        ("a in {'x\"', 'y'}", "a in {'x\"', \"y\"}"),
        ("a not in {}", "a not in {}"),
        ("!!has(a)", "has(a)"),
        // A double negation across parentheses is two nodes, printed as two
        // `!`; re-parsing that text collapses it, exactly as Calico does.
        ("!(!has(a))", "!!has(a)"),
    ];
    for (input, want) in cases {
        let sel = Selector::parse(input).unwrap();
        assert_eq!(sel.canonical(), *want, "input {input:?}");
        assert_eq!(sel.to_string(), *want);
        assert_eq!(sel.as_str(), *want);
    }
}

#[test]
fn unique_id_is_hash_of_canonical() {
    let a = Selector::parse("has(a)&&b=='c'").unwrap();
    let b = Selector::parse("(has(a) && b == \"c\")").unwrap();
    assert_eq!(a, b);
    assert_eq!(a.unique_id(), b.unique_id());
    let id = a.unique_id();
    assert!(id.starts_with("s:"), "{id}");
    // SHA-224 is 28 bytes: 38 base64 characters without padding.
    assert_eq!(id.len(), 2 + 38, "{id}");
    assert!(
        id[2..]
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    );
    assert_ne!(id, Selector::parse("has(a)").unwrap().unique_id());
    assert_eq!(a.unique_id(), id, "stable across calls");
}

#[test]
fn error_positions_and_messages() {
    // (input, position, fragment of the message)
    let cases: &[(&str, usize, &str)] = &[
        ("has(", 4, "expected a label key after 'has('"),
        ("has( )", 5, "expected a label key after 'has('"),
        ("a == 'b", 5, "unterminated string starting at 5"),
        ("    \"x", 4, "unterminated string starting at 4"),
        (
            "b == b",
            5,
            "expected a quoted string after '==', found label 'b'",
        ),
        (
            "b contains b",
            11,
            "expected a quoted string after 'contains'",
        ),
        (
            "'b1' == b",
            0,
            "expected a label key, '!', '(', 'has(..)', 'all()' or 'global()', found string \"b1\"",
        ),
        ("b", 1, "expected an operator after label 'b'"),
        ("a ", 2, "found the end of the selector"),
        ("a b", 2, "expected an operator after label 'a'"),
        ("a (", 2, "expected an operator after label 'a'"),
        ("!", 1, "found the end of the selector"),
        ("foo == \"bar\" &", 13, "expected '&&'"),
        (
            "foo != ||",
            7,
            "expected a quoted string after '!=', found '||'",
        ),
        (
            "foo in {\"\", ||",
            12,
            "expected a quoted string, ',' or '}' in the set, found '||'",
        ),
        ("foo in \"\"", 7, "expected '{' to start the set after 'in'"),
        ("(", 1, "found the end of the selector"),
        ("(a == \"foo\"", 11, "expected ')' to close '(' at 0"),
        (")", 0, "found ')'"),
        ("has(a))", 6, "unexpected ')' with no matching '('"),
        (
            "has(a) has(b)",
            7,
            "expected '&&', '||' or the end of the selector, found 'has(b)'",
        ),
        ("()", 1, "found ')'"),
        ("%", 0, "found '%'"),
        ("a == \"b\" || %", 12, "found '%'"),
        ("has(foo) &&", 11, "found the end of the selector"),
        ("label = \"value\"", 6, "expected '=='"),
        (
            "kubernetes.io/hostname: == 'x'",
            22,
            "expected an operator after label 'kubernetes.io/hostname'",
        ),
        ("a in {'x' 'y'}", 10, "in the set"),
    ];
    for (input, position, fragment) in cases {
        let err = Selector::parse(input).expect_err(input);
        assert_eq!(err.position, *position, "input {input:?}: {err}");
        assert!(
            err.message.contains(fragment),
            "input {input:?}: {:?} lacks {fragment:?}",
            err.message
        );
        assert!(
            err.to_string()
                .starts_with(&format!("invalid selector at position {position}: "))
        );
    }
}

#[test]
fn nesting_limit() {
    let ok = format!(
        "{}has(a){}",
        "(".repeat(MAX_NESTING),
        ")".repeat(MAX_NESTING)
    );
    assert_eq!(Selector::parse(&ok).unwrap().canonical(), "has(a)");
    let deep = format!(
        "{}has(a){}",
        "(".repeat(MAX_NESTING + 1),
        ")".repeat(MAX_NESTING + 1)
    );
    let err = Selector::parse(&deep).unwrap_err();
    assert_eq!(err.position, MAX_NESTING);
    assert!(err.message.contains("nested"), "{}", err.message);
    // Many `!` collapse without nesting.
    let nots = format!("{}has(a)", "!".repeat(10_001));
    assert_eq!(Selector::parse(&nots).unwrap().canonical(), "!has(a)");
}

#[test]
fn expr_tree_and_label_keys() {
    let sel =
        Selector::parse("app == 'web' && (has(tier) || !env in {'a'}) && app != 'x'").unwrap();
    let Expr::And(operands) = sel.expr() else {
        panic!("expected And, got {:?}", sel.expr());
    };
    assert_eq!(operands.len(), 3);
    assert_eq!(
        operands[0],
        Expr::Equals {
            key: "app".into(),
            value: "web".into()
        }
    );
    let Expr::Or(alts) = &operands[1] else {
        panic!("expected Or, got {:?}", operands[1]);
    };
    assert_eq!(alts[0], Expr::Has { key: "tier".into() });
    assert_eq!(
        alts[1],
        Expr::Not(Box::new(Expr::In {
            key: "env".into(),
            values: BTreeSet::from(["a".to_owned()])
        }))
    );
    assert_eq!(sel.label_keys(), BTreeSet::from(["app", "env", "tier"]));
    let mut nodes = 0;
    sel.expr().walk(&mut |_| nodes += 1);
    assert_eq!(nodes, 7, "And, ==, Or, has, Not, in, !=");
    assert!(Selector::all().label_keys().is_empty());
    assert_eq!(Selector::default(), Selector::parse("").unwrap());
}

#[test]
fn label_prefix() {
    let sel = Selector::parse("(a == 'x' || !has(b) || c not in {'y'}) && all()").unwrap();
    let prefixed = sel.with_label_prefix("pcns.");
    assert_eq!(
        prefixed.canonical(),
        "((pcns.a == \"x\" || !has(pcns.b) || pcns.c not in {\"y\"}) && all())"
    );
    assert_eq!(Selector::parse(prefixed.as_str()).unwrap(), prefixed);
    assert!(prefixed.evaluate(&labels(&[("pcns.a", "x")])));
    assert!(!prefixed.evaluate(&labels(&[("a", "x"), ("pcns.b", "1"), ("pcns.c", "y")])));
}

#[test]
fn labels_impls_agree() {
    let sel = Selector::parse("a == 'x' && !has(b)").unwrap();
    let btree = labels(&[("a", "x")]);
    let hash: HashMap<String, String> = btree.clone().into_iter().collect();
    assert!(sel.evaluate(&btree));
    assert!(sel.evaluate(&hash));
    assert!(sel.evaluate(&&hash));
    assert!(sel.expr().evaluate(&hash));
}

#[test]
fn from_str_display_and_serde() {
    let sel: Selector = "a=='x'".parse().unwrap();
    assert_eq!(format!("{sel}"), "a == \"x\"");
    assert_eq!(format!("{sel:?}"), "Selector(\"a == \\\"x\\\"\")");
    assert!("a=".parse::<Selector>().is_err());

    let json = serde_json::to_string(&sel).unwrap();
    assert_eq!(json, r#""a == \"x\"""#);
    let back: Selector = serde_json::from_str(&json).unwrap();
    assert_eq!(back, sel);
    let from_raw: Selector = serde_json::from_str(r#""has(a)&&b in {'z','y'}""#).unwrap();
    assert_eq!(from_raw.canonical(), "(has(a) && b in {\"y\", \"z\"})");
    let err = serde_json::from_str::<Selector>(r#""a = 'x'""#).unwrap_err();
    assert!(
        err.to_string().contains("invalid selector at position 2"),
        "{err}"
    );
    assert!(serde_json::from_str::<Selector>("42").is_err());
}

#[test]
fn ordering_and_hash_follow_canonical_form() {
    let set: BTreeSet<Selector> = ["has(b)", "has(a)", "has( a )"]
        .iter()
        .map(|s| Selector::parse(s).unwrap())
        .collect();
    let got: Vec<&str> = set.iter().map(Selector::as_str).collect();
    assert_eq!(got, ["has(a)", "has(b)"]);
    let hashed: std::collections::HashSet<Selector> =
        set.iter().cloned().chain(set.iter().cloned()).collect();
    assert_eq!(hashed.len(), 2);
}
