//! Printing resources the way calicoctl prints them: YAML, JSON and tables.

pub mod gofmt;
pub mod table;
pub mod yaml;

use anyhow::bail;
use serde_json::Value;

/// `-o` of `get` (and `convert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Ps,
    Wide,
    Yaml,
    Json,
    /// `custom-columns=NAME,CIDR`.
    Columns(Vec<String>),
}

impl Format {
    pub fn parse(text: &str) -> anyhow::Result<Format> {
        Ok(match text {
            "yaml" | "yml" => Format::Yaml,
            "json" => Format::Json,
            "ps" => Format::Ps,
            "wide" => Format::Wide,
            _ => match text.split_once('=') {
                Some(("custom-columns", "")) => bail!("need to specify at least one column"),
                Some(("custom-columns", columns)) => {
                    Format::Columns(columns.split(',').map(str::to_owned).collect())
                }
                Some(("go-template" | "go-template-file", _)) => {
                    bail!(
                        "output format '{text}' is not supported: use yaml, json, ps, wide or custom-columns"
                    )
                }
                _ => bail!("unrecognized output format '{text}'"),
            },
        })
    }

    pub fn is_table(&self) -> bool {
        matches!(self, Format::Ps | Format::Wide | Format::Columns(_))
    }
}

/// Writes command output to stdout. A reader that went away (`| head`)
/// ends the output quietly rather than as an error.
pub fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write to stdout"))
        }
        _ => Ok(()),
    }
}

/// Objects printed as calicoctl prints them: one on its own, several as a
/// sequence. YAML ends with a newline; JSON, as Go writes it, does not.
pub fn documents(objects: &[Value], json: bool) -> String {
    let value = match objects {
        [one] => one.clone(),
        many => Value::Array(many.to_vec()),
    };
    if json {
        calico_model::document::to_json_pretty(&value)
    } else {
        yaml::to_yaml(&value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats() {
        assert_eq!(Format::parse("yml").unwrap(), Format::Yaml);
        assert_eq!(
            Format::parse("custom-columns=NAME,CIDR").unwrap(),
            Format::Columns(vec!["NAME".into(), "CIDR".into()])
        );
        assert_eq!(
            Format::parse("table").unwrap_err().to_string(),
            "unrecognized output format 'table'"
        );
        assert!(Format::parse("custom-columns=").is_err());
    }

    #[test]
    fn one_object_or_a_sequence() {
        let a = json!({"kind": "Tier", "metadata": {"name": "a"}});
        assert_eq!(
            documents(std::slice::from_ref(&a), false),
            "kind: Tier\nmetadata:\n  name: a\n"
        );
        assert_eq!(
            documents(&[a.clone(), a.clone()], false).lines().next(),
            Some("- kind: Tier")
        );
        assert_eq!(
            documents(&[a], true),
            "{\n  \"kind\": \"Tier\",\n  \"metadata\": {\n    \"name\": \"a\"\n  }\n}"
        );
    }
}
