//! Reading resources from `-f`: a file, `-` for stdin, or a directory of
//! `.yaml`, `.yml` and `.json` files (recursively with `-R`), in name
//! order, as calicoctl does.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use calico_model::document::parse_documents;
use calico_model::resource::AnyResource;

/// One resource and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub location: Location,
    pub resource: AnyResource,
}

/// A file (or stdin), a 0-based document index and list item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub source: String,
    pub document: usize,
    pub item: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.source, self.document + 1)?;
        if let Some(item) = self.item {
            write!(f, ", item {}", item + 1)?;
        }
        Ok(())
    }
}

/// The files `-f` names.
fn inputs(path: &Path, recursive: bool) -> anyhow::Result<Vec<PathBuf>> {
    if path == Path::new("-") || !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut found = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read directory {}", dir.display()))?;
        for entry in entries {
            let entry =
                entry.with_context(|| format!("cannot read directory {}", dir.display()))?;
            let p = entry.path();
            if p.is_dir() {
                if recursive {
                    dirs.push(p);
                }
            } else if matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            ) {
                found.push(p);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn read(path: &Path) -> anyhow::Result<(String, String)> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
        return Ok(("stdin".to_owned(), text));
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("open {}", path.display()))?;
    Ok((path.display().to_string(), text))
}

/// Every resource `-f` names. A document that does not parse fails the
/// whole load, naming the file, document and field. An empty file is an
/// error unless `skip_empty`.
pub fn load(path: &Path, recursive: bool, skip_empty: bool) -> anyhow::Result<Vec<Loaded>> {
    let files = inputs(path, recursive)?;
    let mut loaded = Vec::new();
    for file in &files {
        let (source, text) = read(file)?;
        let docs = parse_documents(&source, &text)?;
        if docs.is_empty() && !skip_empty {
            bail!("no resources specified in file {source}");
        }
        loaded.extend(docs.into_iter().map(|d| Loaded {
            location: Location {
                source: source.clone(),
                document: d.index,
                item: d.item,
            },
            resource: d.resource,
        }));
    }
    if loaded.is_empty() && path.is_dir() && !skip_empty {
        bail!("no resources specified in directory {}", path.display());
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: &str = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  cidr: 10.0.0.0/16\n";

    #[test]
    fn directories_in_name_order_recursively_on_request() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            POOL.replace("name: p", "name: b"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("a.json"),
            r#"{"apiVersion":"projectcalico.org/v3","kind":"Tier","metadata":{"name":"a"}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(
            dir.path().join("sub/c.yml"),
            POOL.replace("name: p", "name: c"),
        )
        .unwrap();
        let names = |l: Vec<Loaded>| {
            l.into_iter()
                .map(|l| l.resource.metadata().name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(load(dir.path(), false, false).unwrap()), ["a", "b"]);
        assert_eq!(
            names(load(dir.path(), true, false).unwrap()),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn errors_name_file_document_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pools.yaml");
        std::fs::write(
            &file,
            format!("{POOL}---\n{}", POOL.replace("cidr:", "cidrz:")),
        )
        .unwrap();
        let err = format!("{:#}", load(&file, false, false).unwrap_err());
        assert!(err.contains("pools.yaml"), "{err}");
        assert!(err.contains("document 2"), "{err}");
        assert!(err.contains("spec.cidrz") || err.contains("cidrz"), "{err}");

        let empty = dir.path().join("empty.yaml");
        std::fs::write(&empty, "# nothing\n").unwrap();
        let err = load(&empty, false, false).unwrap_err().to_string();
        assert!(err.starts_with("no resources specified in file"), "{err}");
        assert!(load(&empty, false, true).unwrap().is_empty());
        let missing = load(&dir.path().join("missing.yaml"), false, false).unwrap_err();
        assert!(
            format!("{missing:#}").contains("missing.yaml"),
            "{missing:#}"
        );
    }

    #[test]
    fn locations_count_from_one() {
        let l = Location {
            source: "f.yaml".into(),
            document: 1,
            item: Some(0),
        };
        assert_eq!(l.to_string(), "f.yaml: document 2, item 1");
    }
}
