//! Property tests: random expression trees written out in varied spellings
//! parse back to the same tree; canonical forms round-trip; no input makes
//! the parser panic.

use std::collections::{BTreeMap, BTreeSet};

use calico_selector::{Expr, Selector};
use proptest::prelude::*;

type LabelMap = BTreeMap<String, String>;

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "c", "projectcalico.org/namespace", "in", "has", "all"])
            .prop_map(str::to_owned),
        1 => "[a-zA-Z0-9_./-]{1,12}",
    ]
}

/// A string value: anything except both quote characters at once (a
/// literal cannot hold its own quote).
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["x", "y", "", "xy"]).prop_map(str::to_owned),
        1 => "[a-c '\"é(){}&|!=\t]{0,6}".prop_map(|s| {
            if s.contains('"') && s.contains('\'') { s.replace('\'', "") } else { s }
        }),
    ]
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        Just(Expr::All),
        Just(Expr::Global),
        key().prop_map(|key| Expr::Has { key }),
        (key(), value()).prop_map(|(key, value)| Expr::Equals { key, value }),
        (key(), value()).prop_map(|(key, value)| Expr::NotEquals { key, value }),
        (key(), value()).prop_map(|(key, value)| Expr::Contains { key, value }),
        (key(), value()).prop_map(|(key, value)| Expr::StartsWith { key, value }),
        (key(), value()).prop_map(|(key, value)| Expr::EndsWith { key, value }),
        (key(), prop::collection::btree_set(value(), 0..4))
            .prop_map(|(key, values)| Expr::In { key, values }),
        (key(), prop::collection::btree_set(value(), 0..4))
            .prop_map(|(key, values)| Expr::NotIn { key, values }),
    ]
}

/// Any tree the parser can produce: `&&`/`||` with two or more operands,
/// `!` over anything (a double `!` needs parentheses to survive).
fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(5, 40, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner, 2..4).prop_map(Expr::Or),
        ]
    })
}

fn labels() -> impl Strategy<Value = LabelMap> {
    prop::collection::btree_map(key(), value(), 0..5)
}

/// Label maps aimed at `e`: each key it mentions is absent, or carries one
/// of its values, or a value that contains, starts or ends with one.
fn labels_for(e: &Expr, c: &mut Choices) -> LabelMap {
    let mut values: Vec<String> = vec![String::new()];
    e.walk(&mut |n| match n {
        Expr::Equals { value, .. }
        | Expr::NotEquals { value, .. }
        | Expr::Contains { value, .. }
        | Expr::StartsWith { value, .. }
        | Expr::EndsWith { value, .. } => values.push(value.clone()),
        Expr::In { values: vs, .. } | Expr::NotIn { values: vs, .. } => {
            values.extend(vs.iter().cloned())
        }
        _ => {}
    });
    let mut out = LabelMap::new();
    for key in keys_of(e) {
        let i = c
            .pick(&["0", "1", "2", "3", "4", "5", "6", "7"])
            .parse::<usize>()
            .unwrap()
            % values.len();
        let v = &values[i];
        let label = match c.pick(&["absent", "same", "same", "pre", "post", "mid"]) {
            "absent" => continue,
            "same" => v.clone(),
            "pre" => format!("z{v}"),
            "post" => format!("{v}z"),
            _ => format!("z{v}z"),
        };
        out.insert(key, label);
    }
    out
}

/// A small deterministic generator for spelling choices, seeded by proptest.
struct Choices(u64);

impl Choices {
    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        options[(self.0 % options.len() as u64) as usize]
    }

    fn flip(&mut self) -> bool {
        self.pick(&["", "y"]) == "y"
    }

    fn blank(&mut self) -> &'static str {
        self.pick(&["", "", " ", "\t", "  "])
    }

    /// At least one blank: needed between a label key and a word operator.
    fn gap(&mut self) -> &'static str {
        self.pick(&[" ", " ", "\t", " \t "])
    }
}

/// Writes `e` as selector text, choosing among the spellings the language
/// accepts so that the parser must undo all of them.
fn render(e: &Expr, c: &mut Choices) -> String {
    let quoted = |v: &str, c: &mut Choices| {
        let q = if v.contains('"') {
            '\''
        } else if v.contains('\'') || c.flip() {
            '"'
        } else {
            '\''
        };
        format!("{q}{v}{q}")
    };
    let core = match e {
        Expr::All => format!("all({})", c.blank()),
        Expr::Global => format!("global({})", c.blank()),
        Expr::Has { key } => format!("has({}{key}{})", c.blank(), c.blank()),
        Expr::Equals { key, value } | Expr::NotEquals { key, value } => {
            let op = if matches!(e, Expr::Equals { .. }) {
                "=="
            } else {
                "!="
            };
            format!("{key}{}{op}{}{}", c.blank(), c.blank(), quoted(value, c))
        }
        Expr::Contains { key, value } => {
            format!("{key}{}contains{}{}", c.gap(), c.blank(), quoted(value, c))
        }
        Expr::StartsWith { key, value } => {
            let op = c.pick(&["starts with", "startswith", "starts \t with"]);
            format!("{key}{}{op}{}{}", c.gap(), c.blank(), quoted(value, c))
        }
        Expr::EndsWith { key, value } => {
            let op = c.pick(&["ends with", "endswith", "ends\twith"]);
            format!("{key}{}{op}{}{}", c.gap(), c.blank(), quoted(value, c))
        }
        Expr::In { key, values } | Expr::NotIn { key, values } => {
            let op = if matches!(e, Expr::In { .. }) {
                "in"
            } else {
                c.pick(&["not in", "notin", "not  in"])
            };
            // Repeat and reverse the items: the parser sorts and de-duplicates.
            let mut items: Vec<String> = values.iter().map(|v| quoted(v, c)).collect();
            if c.flip() {
                items.reverse();
            }
            if let Some(first) = values.iter().next().filter(|_| c.flip()) {
                items.push(quoted(first, c));
            }
            let trailing = if !items.is_empty() && c.flip() {
                ","
            } else {
                ""
            };
            let sep = format!(",{}", c.blank());
            format!(
                "{key}{}{op}{}{{{}{trailing}}}",
                c.gap(),
                c.blank(),
                items.join(&sep)
            )
        }
        Expr::Not(inner) => {
            let bangs = c.pick(&["!", "!", "! ", "!!!", "! !!"]);
            match inner.as_ref() {
                Expr::Not(_) => format!("{bangs}({})", render(inner, c)),
                _ => format!("{bangs}{}", render_operand(inner, c)),
            }
        }
        Expr::And(ops) | Expr::Or(ops) => {
            let op = if matches!(e, Expr::And(_)) {
                "&&"
            } else {
                "||"
            };
            let parts: Vec<String> = ops
                .iter()
                .map(|o| match (e, o) {
                    // `&&` binds tighter, so an `&&` inside `||` needs no
                    // parentheses; everything else nested does.
                    (Expr::Or(_), Expr::And(_)) if c.flip() => render(o, c),
                    _ => render_operand(o, c),
                })
                .collect();
            let sep = format!("{}{op}{}", c.blank(), c.blank());
            parts.join(&sep)
        }
    };
    if c.pick(&["", "", "", "", "p"]) == "p" {
        format!("({}{core}{})", c.blank(), c.blank())
    } else {
        core
    }
}

/// Renders `e` where it must read as one operation: groups get parentheses.
fn render_operand(e: &Expr, c: &mut Choices) -> String {
    match e {
        Expr::And(_) | Expr::Or(_) => format!("({})", render(e, c)),
        _ => render(e, c),
    }
}

/// The language's meaning, restated over a plain map.
fn reference_eval(e: &Expr, l: &LabelMap) -> bool {
    let get = |k: &String| l.get(k).map(String::as_str);
    match e {
        Expr::All | Expr::Global => true,
        Expr::Has { key } => l.contains_key(key),
        Expr::Equals { key, value } => get(key) == Some(value.as_str()),
        Expr::NotEquals { key, value } => get(key) != Some(value.as_str()),
        Expr::Contains { key, value } => get(key).is_some_and(|v| v.contains(value.as_str())),
        Expr::StartsWith { key, value } => get(key).is_some_and(|v| v.starts_with(value.as_str())),
        Expr::EndsWith { key, value } => get(key).is_some_and(|v| v.ends_with(value.as_str())),
        Expr::In { key, values } => get(key).is_some_and(|v| values.contains(v)),
        Expr::NotIn { key, values } => !get(key).is_some_and(|v| values.contains(v)),
        Expr::Not(inner) => !reference_eval(inner, l),
        Expr::And(ops) => ops.iter().all(|o| reference_eval(o, l)),
        Expr::Or(ops) => ops.iter().any(|o| reference_eval(o, l)),
    }
}

fn has_double_not(e: &Expr) -> bool {
    let mut found = false;
    e.walk(&mut |n| {
        if let Expr::Not(inner) = n {
            found |= matches!(inner.as_ref(), Expr::Not(_));
        }
    });
    found
}

fn keys_of(e: &Expr) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    e.walk(&mut |n| {
        if let Some(k) = n.key() {
            keys.insert(k.to_owned());
        }
    });
    keys
}

/// Fragments that make up selector text, valid or not, so that random
/// soups reach deep into the parser rather than failing on the first byte.
const SOUP: &[&str] = &[
    "a", "b", "k8s.io/x", "==", "!=", "=", "!", "(", ")", "{", "}", ",", "'x'", "\"y\"", "'", "\"",
    "in", "not", "contains", "starts", "with", "ends", "has(", "all()", "global()", "all(", "&&",
    "||", "&", "|", " ", "\t", "é", "\n",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn rendered_trees_parse_back_exactly(
        e in expr(),
        seed in any::<u64>(),
        random in prop::collection::vec(labels(), 1..4),
    ) {
        let mut c = Choices(seed | 1);
        let text = render(&e, &mut c);
        let samples: Vec<LabelMap> = random.into_iter().chain((0..8).map(|_| labels_for(&e, &mut c))).collect();
        let sel = Selector::parse(&text).map_err(|err| TestCaseError::fail(format!("{text:?}: {err}")))?;
        prop_assert_eq!(sel.expr(), &e, "text {:?}", text);
        let keys: BTreeSet<String> = sel.label_keys().into_iter().map(str::to_owned).collect();
        prop_assert_eq!(keys, keys_of(&e));
        for l in &samples {
            prop_assert_eq!(sel.evaluate(l), reference_eval(&e, l), "text {:?} labels {:?}", text, l);
        }
    }

    #[test]
    fn canonical_form_round_trips(
        e in expr(),
        seed in any::<u64>(),
        random in prop::collection::vec(labels(), 1..4),
    ) {
        let mut c = Choices(seed | 1);
        let text = render(&e, &mut c);
        let samples: Vec<LabelMap> = random.into_iter().chain((0..8).map(|_| labels_for(&e, &mut c))).collect();
        let sel = Selector::parse(&text).unwrap();
        let again = Selector::parse(sel.as_str())
            .map_err(|err| TestCaseError::fail(format!("canonical {:?}: {err}", sel.as_str())))?;
        if has_double_not(&e) {
            // `!(!x)` prints as `!!x`, which re-parses as `x` (as in
            // Calico): one more round must then be stable.
            let third = Selector::parse(again.as_str()).unwrap();
            prop_assert_eq!(third.as_str(), again.as_str());
            prop_assert!(!has_double_not(again.expr()));
        } else {
            prop_assert_eq!(again.as_str(), sel.as_str());
            prop_assert_eq!(again.unique_id(), sel.unique_id());
            prop_assert_eq!(again.expr(), sel.expr());
        }
        for l in &samples {
            prop_assert_eq!(again.evaluate(l), sel.evaluate(l), "canonical {:?} labels {:?}", sel.as_str(), l);
        }
    }

    #[test]
    fn parse_never_panics_on_arbitrary_text(text in any::<String>()) {
        check_any_input(&text)?;
    }

    #[test]
    fn parse_never_panics_on_edited_selectors(
        e in expr(),
        seed in any::<u64>(),
        at in any::<prop::sample::Index>(),
        fragment in prop::sample::select(SOUP),
        edit in 0..3u8,
    ) {
        let text = render(&e, &mut Choices(seed | 1));
        let chars: Vec<char> = text.chars().collect();
        let i = at.index(chars.len() + 1);
        let head: String = chars[..i].iter().collect();
        let tail: String = chars[i..].iter().skip(usize::from(edit > 0)).collect();
        let edited = match edit {
            0 => format!("{head}{fragment}{tail}"),
            1 => format!("{head}{tail}"),
            _ => format!("{head}{fragment}{tail}"),
        };
        check_any_input(&edited)?;
    }

    #[test]
    fn parse_never_panics_on_token_soup(parts in prop::collection::vec(prop::sample::select(SOUP), 0..24)) {
        check_any_input(&parts.concat())?;
    }
}

/// Whatever the input: no panic; an error points inside the input at a
/// character boundary; a success has a canonical form that parses, is
/// stable after one more round, and selects the same items.
fn check_any_input(text: &str) -> Result<(), TestCaseError> {
    match Selector::parse(text) {
        Err(err) => {
            prop_assert!(err.position <= text.len(), "{:?}: {:?}", text, err);
            prop_assert!(text.is_char_boundary(err.position), "{:?}: {:?}", text, err);
            prop_assert!(!err.message.is_empty());
        }
        Ok(sel) => {
            let again = Selector::parse(sel.as_str()).map_err(|err| {
                TestCaseError::fail(format!("{text:?} -> {:?}: {err}", sel.as_str()))
            })?;
            let third = Selector::parse(again.as_str()).unwrap();
            prop_assert_eq!(third.as_str(), again.as_str());
            let sample: LabelMap = [("a", "x"), ("b", "y")]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            for l in [LabelMap::new(), sample] {
                prop_assert_eq!(again.evaluate(&l), sel.evaluate(&l));
            }
        }
    }
    Ok(())
}
