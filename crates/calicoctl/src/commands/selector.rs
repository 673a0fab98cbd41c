//! `selector check EXPR` and `selector match EXPR --labels k=v,...`: ours,
//! beyond Calico, over the same selector code the dataplane uses.

use std::collections::BTreeMap;
use std::process::ExitCode;

use calico_selector::Selector;

use crate::cli::SelectorCommand;

/// Exit code of `selector match` for a selector (or labels) that cannot
/// be read; 0 and 1 mean match and no match.
const BAD_INPUT: u8 = 2;

pub fn run(command: &SelectorCommand) -> ExitCode {
    match command {
        SelectorCommand::Check { expression } => check(expression),
        SelectorCommand::Match { expression, labels } => matches(expression, labels),
    }
}

/// Prints whether the selector is valid, and its canonical form and unique
/// ID, or where it goes wrong.
fn check(expression: &str) -> ExitCode {
    match Selector::parse(expression) {
        Ok(selector) => {
            println!("valid");
            println!("canonical: {}", selector.as_str());
            println!("unique id: {}", selector.unique_id_str());
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("invalid: {e}");
            println!("  {expression}");
            println!("  {}^", " ".repeat(column(expression, e.position)));
            ExitCode::FAILURE
        }
    }
}

/// The character column of a byte position.
fn column(text: &str, position: usize) -> usize {
    let mut end = position.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].chars().count()
}

/// `k=v,k2=v2` (several flags are merged); a key without `=` has the empty
/// value.
fn parse_labels(specs: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for spec in specs {
        for pair in spec.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k.is_empty() {
                return Err(format!("invalid label {pair:?}: the key is empty"));
            }
            labels.insert(k.to_owned(), v.to_owned());
        }
    }
    Ok(labels)
}

fn matches(expression: &str, label_specs: &[String]) -> ExitCode {
    let selector = match Selector::parse(expression) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(BAD_INPUT);
        }
    };
    let labels = match parse_labels(label_specs) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(BAD_INPUT);
        }
    };
    if selector.evaluate(&labels) {
        println!("match");
        ExitCode::SUCCESS
    } else {
        println!("no match");
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse() {
        let l = parse_labels(&["a=b,c=d=e".into(), "f".into()]).unwrap();
        assert_eq!(l["a"], "b");
        assert_eq!(l["c"], "d=e");
        assert_eq!(l["f"], "");
        assert!(parse_labels(&["=x".into()]).is_err());
        assert!(parse_labels(&[String::new()]).unwrap().is_empty());
    }

    #[test]
    fn caret_columns_count_characters() {
        assert_eq!(column("a == 'é' &&", 12), 11);
        assert_eq!(column("abc", 10), 3);
    }
}
