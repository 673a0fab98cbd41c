//! Output: the `-o` formats, the tables, and writing to stdout. YAML and
//! JSON documents are `calico_model::document::print`'s.

pub mod table;

use anyhow::bail;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
