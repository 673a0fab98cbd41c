//! Reading manifests (YAML or JSON; several documents separated by `---`;
//! `kind: List` and `kind: <Kind>List` with `items`; a top-level sequence
//! of resources) and printing resources the way `calicoctl` prints them.
//!
//! Reading is two passes over each document: the first reads it as plain
//! JSON to learn each resource's kind, the second reads the typed resource
//! straight from the source text, so errors carry the field path and the
//! line and column. Printing writes YAML with [`to_yaml`] (the `yaml`
//! module, go-yaml v2's layout) and JSON as Go's encoder does.

mod yaml;

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::kind::{CALICO_API_VERSION, Kind};
use crate::resource::{AnyResource, KindSeed, ResourceError, kind_of};

pub use yaml::to_yaml;

/// One resource read from a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// 0-based position of the document (`---`-separated, or JSON value)
    /// in the source.
    pub index: usize,
    /// 0-based position within the document's `items` (or top-level
    /// sequence), when the document held several resources.
    pub item: Option<usize>,
    pub resource: AnyResource,
}

/// What was wrong with a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentProblem {
    /// Not valid YAML or JSON.
    Syntax(String),
    /// Valid, but not a resource (no apiVersion/kind, an unknown kind...).
    Resource(ResourceError),
    /// A field is unknown or has the wrong type.
    Field(String),
}

/// A manifest error, naming the source, the document (and list item), the
/// field path and, when known, the line and column. Its fields are those of
/// [`DocumentErrorDetail`], reached through `Deref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentError(Box<DocumentErrorDetail>);

impl std::ops::Deref for DocumentError {
    type Target = DocumentErrorDetail;
    fn deref(&self) -> &DocumentErrorDetail {
        &self.0
    }
}

impl From<DocumentErrorDetail> for DocumentError {
    fn from(d: DocumentErrorDetail) -> Self {
        DocumentError(Box::new(d))
    }
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DocumentError {}

/// What a [`DocumentError`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentErrorDetail {
    /// File name, or `stdin`.
    pub source: String,
    /// 0-based document index, when the error is inside one.
    pub document: Option<usize>,
    /// 0-based item index inside a list document.
    pub item: Option<usize>,
    /// JSON path of the bad field, e.g. `spec.ingress[0].destination.portz`.
    pub path: Option<String>,
    /// 1-based line and column in the source.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub problem: DocumentProblem,
}

impl fmt::Display for DocumentErrorDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if let Some(d) = self.document {
            write!(f, ": document {}", d + 1)?;
            if let Some(i) = self.item {
                write!(f, ", item {}", i + 1)?;
            }
        }
        if let Some(p) = self.path.as_deref().filter(|p| !p.is_empty() && *p != ".") {
            write!(f, ": {p}")?;
        }
        match &self.problem {
            DocumentProblem::Syntax(m) => write!(f, ": invalid YAML/JSON: {m}"),
            DocumentProblem::Resource(e) => write!(f, ": {e}"),
            DocumentProblem::Field(m) => write!(f, ": {m}"),
        }
    }
}

/// How a document holds its resources.
enum Shape {
    Single(Kind),
    /// `kind: List` / `kind: <Kind>List`, with the kind of each item.
    List(Vec<Kind>),
    /// A bare sequence of resources.
    Sequence(Vec<Kind>),
}

/// Works out the shape of one document from its JSON value.
fn shape_of(value: &Value) -> Result<Shape, (Option<usize>, ResourceError)> {
    let item_kinds = |items: &[Value], default: Option<Kind>| {
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let has_type = item.get("kind").is_some() || item.get("apiVersion").is_some();
                match (default, has_type) {
                    (Some(k), false) if item.is_object() => Ok(k),
                    _ => kind_of(item).map_err(|e| (Some(i), e)),
                }
            })
            .collect::<Result<Vec<Kind>, _>>()
    };
    match value {
        Value::Array(items) => item_kinds(items, None).map(Shape::Sequence),
        Value::Object(obj) => {
            let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
            let list_of = kind.strip_suffix("List");
            if list_of.is_some() && obj.contains_key("items") {
                let default = match list_of {
                    Some("") | None => None,
                    Some(k) => {
                        let api = obj
                            .get("apiVersion")
                            .and_then(Value::as_str)
                            .unwrap_or(CALICO_API_VERSION);
                        Some(Kind::from_api(api, k).ok_or_else(|| {
                            (
                                None,
                                ResourceError::UnknownKind {
                                    api_version: api.to_string(),
                                    kind: kind.to_string(),
                                },
                            )
                        })?)
                    }
                };
                let items = obj
                    .get("items")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                item_kinds(items, default).map(Shape::List)
            } else {
                kind_of(value).map(Shape::Single).map_err(|e| (None, e))
            }
        }
        _ => Err((None, ResourceError::NotAnObject)),
    }
}

/// Reads the items of a list or sequence, each with its kind.
struct ItemsSeed<'a>(&'a [Kind]);

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = Vec<AnyResource>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = Vec<AnyResource>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of resources")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(self.0.len());
        for kind in self.0 {
            match seq.next_element_seed(KindSeed(*kind))? {
                Some(r) => out.push(r),
                None => break,
            }
        }
        Ok(out)
    }
}

/// Reads a `List` document: type fields and list metadata are accepted,
/// `items` is read with the kinds found in the first pass.
struct ListSeed<'a>(&'a [Kind]);

impl<'de> DeserializeSeed<'de> for ListSeed<'_> {
    type Value = Vec<AnyResource>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ListSeed<'_> {
    type Value = Vec<AnyResource>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a resource list")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "items" => items = map.next_value_seed(ItemsSeed(self.0))?,
                "apiVersion" | "kind" | "metadata" => {
                    map.next_value::<IgnoredAny>()?;
                }
                other => {
                    return Err(de::Error::unknown_field(
                        other,
                        &["apiVersion", "kind", "metadata", "items"],
                    ));
                }
            }
        }
        Ok(items)
    }
}

/// Reads a whole document of a known shape from a deserializer, tracking
/// the path of any error.
fn read_typed<'de, D>(shape: &Shape, de: D) -> Result<Vec<AnyResource>, (String, D::Error)>
where
    D: Deserializer<'de>,
{
    let mut track = serde_path_to_error::Track::new();
    let wrapped = serde_path_to_error::Deserializer::new(de, &mut track);
    let result = match shape {
        Shape::Single(kind) => KindSeed(*kind).deserialize(wrapped).map(|r| vec![r]),
        Shape::List(kinds) => ListSeed(kinds).deserialize(wrapped),
        Shape::Sequence(kinds) => ItemsSeed(kinds).deserialize(wrapped),
    };
    result.map_err(|e| (track.path().to_string(), e))
}

/// The item index named by the start of an error path (`items[3]...` or
/// `[3]...`).
fn item_of_path(shape: &Shape, path: &str) -> Option<usize> {
    let rest = match shape {
        Shape::Single(_) => return None,
        Shape::List(_) => path.strip_prefix("items")?,
        Shape::Sequence(_) => path,
    };
    let rest = rest.strip_prefix('[')?;
    rest[..rest.find(']')?].parse().ok()
}

/// Removes what the parser appends (" at line L column C") and serde_yaml's
/// own path prefix, leaving the bare message.
fn bare_message(message: &str, line: Option<usize>, column: Option<usize>) -> String {
    let mut m = message.to_string();
    if let (Some(l), Some(c)) = (line, column) {
        let suffix = format!(" at line {l} column {c}");
        if let Some(s) = m.strip_suffix(&suffix) {
            m = s.to_string();
        }
    }
    if let Some((prefix, rest)) = m.split_once(": ") {
        let is_path = !prefix.is_empty()
            && prefix.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'[' | b']' | b'_' | b'-')
            });
        if is_path {
            m = rest.to_string();
        }
    }
    m
}

struct Ctx<'a> {
    source: &'a str,
}

impl Ctx<'_> {
    fn error(&self, document: Option<usize>, problem: DocumentProblem) -> DocumentErrorDetail {
        DocumentErrorDetail {
            source: self.source.to_string(),
            document,
            item: None,
            path: None,
            line: None,
            column: None,
            problem,
        }
    }

    fn shape(&self, index: usize, value: &Value) -> Result<Shape, DocumentError> {
        shape_of(value).map_err(|(item, e)| {
            DocumentErrorDetail {
                item,
                ..self.error(Some(index), DocumentProblem::Resource(e))
            }
            .into()
        })
    }

    fn push(
        &self,
        out: &mut Vec<Document>,
        index: usize,
        shape: &Shape,
        resources: Vec<AnyResource>,
    ) {
        let listed = !matches!(shape, Shape::Single(_));
        for (i, resource) in resources.into_iter().enumerate() {
            out.push(Document {
                index,
                item: listed.then_some(i),
                resource,
            });
        }
    }
}

fn looks_like_json(text: &str) -> bool {
    matches!(text.trim_start().as_bytes().first(), Some(b'{' | b'['))
}

fn parse_json(ctx: &Ctx<'_>, text: &str) -> Result<Vec<Document>, DocumentError> {
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut start = 0;
    let mut index = 0;
    while let Some(next) = stream.next() {
        let value = next.map_err(|e| DocumentErrorDetail {
            line: Some(e.line()),
            column: Some(e.column()),
            ..ctx.error(
                Some(index),
                DocumentProblem::Syntax(bare_message(
                    &e.to_string(),
                    Some(e.line()),
                    Some(e.column()),
                )),
            )
        })?;
        let end = stream.byte_offset();
        let slice = &text[start..end];
        let lines_before = text[..start].matches('\n').count();
        start = end;
        let shape = ctx.shape(index, &value)?;
        let mut de = serde_json::Deserializer::from_str(slice);
        let resources = read_typed(&shape, &mut de).map_err(|(path, e)| {
            let (line, column) = (e.line() + lines_before, e.column());
            DocumentErrorDetail {
                item: item_of_path(&shape, &path),
                path: Some(path),
                line: Some(line),
                column: Some(column),
                ..ctx.error(
                    Some(index),
                    DocumentProblem::Field(bare_message(
                        &e.to_string(),
                        Some(e.line()),
                        Some(e.column()),
                    )),
                )
            }
        })?;
        ctx.push(&mut out, index, &shape, resources);
        index += 1;
    }
    Ok(out)
}

fn parse_yaml(ctx: &Ctx<'_>, text: &str) -> Result<Vec<Document>, DocumentError> {
    let syntax = |index: usize, e: serde_yaml_ng::Error| {
        let loc = e.location();
        let (line, column) = (
            loc.as_ref().map(|l| l.line()),
            loc.as_ref().map(|l| l.column()),
        );
        DocumentErrorDetail {
            line,
            column,
            ..ctx.error(
                Some(index),
                DocumentProblem::Syntax(bare_message(&e.to_string(), line, column)),
            )
        }
    };
    let mut values = Vec::new();
    for (index, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        values.push(Value::deserialize(doc).map_err(|e| syntax(index, e))?);
    }
    let mut out = Vec::new();
    for ((index, doc), value) in serde_yaml_ng::Deserializer::from_str(text)
        .enumerate()
        .zip(values)
    {
        if value.is_null() {
            continue;
        }
        let shape = ctx.shape(index, &value)?;
        let resources = read_typed(&shape, doc).map_err(|(path, e)| {
            let loc = e.location();
            let (line, column) = (
                loc.as_ref().map(|l| l.line()),
                loc.as_ref().map(|l| l.column()),
            );
            DocumentErrorDetail {
                item: item_of_path(&shape, &path),
                path: Some(path),
                line,
                column,
                ..ctx.error(
                    Some(index),
                    DocumentProblem::Field(bare_message(&e.to_string(), line, column)),
                )
            }
        })?;
        ctx.push(&mut out, index, &shape, resources);
    }
    Ok(out)
}

/// Reads every resource in a manifest. `source` names the input in errors
/// (a file name, or `stdin`). JSON input may hold several concatenated
/// values; YAML input several `---`-separated documents. Empty documents
/// are skipped; an empty input gives an empty list.
pub fn parse_documents(source: &str, text: &str) -> Result<Vec<Document>, DocumentError> {
    let ctx = Ctx { source };
    if looks_like_json(text) {
        match parse_json(&ctx, text) {
            Ok(docs) => return Ok(docs),
            // A YAML flow mapping also starts with '{'; only a syntax error
            // is worth a second try as YAML.
            Err(e) if matches!(e.problem, DocumentProblem::Syntax(_)) => {
                return parse_yaml(&ctx, text).map_err(|_| e);
            }
            Err(e) => return Err(e),
        }
    }
    parse_yaml(&ctx, text)
}

/// The resources alone, in order.
pub fn parse_resources(source: &str, text: &str) -> Result<Vec<AnyResource>, DocumentError> {
    parse_documents(source, text).map(|docs| docs.into_iter().map(|d| d.resource).collect())
}

/// `{kind: <Kind>List, apiVersion, metadata: {resourceVersion}, items}`, the
/// object `calicoctl get <kind> -o yaml|json` prints for a listing.
pub fn list_value(kind: Kind, items: &[AnyResource], resource_version: &str) -> Value {
    let mut meta = Map::new();
    if !resource_version.is_empty() {
        meta.insert(
            "resourceVersion".into(),
            Value::String(resource_version.into()),
        );
    }
    let mut out = Map::new();
    out.insert("kind".into(), Value::String(kind.list_kind()));
    out.insert(
        "apiVersion".into(),
        Value::String(kind.api_version().into()),
    );
    out.insert("metadata".into(), Value::Object(meta));
    out.insert(
        "items".into(),
        Value::Array(items.iter().map(AnyResource::to_json_value).collect()),
    );
    Value::Object(out)
}

/// Output formats `calicoctl` prints objects in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Yaml,
    Json,
}

/// Prints objects as `calicoctl` does: one object on its own, several as a
/// sequence. YAML is go-yaml v2's layout ([`to_yaml`]); JSON keeps Calico's
/// field order, is indented by two spaces and escapes `<`, `>` and `&` as
/// Go does. JSON output has no trailing newline; YAML output ends with one.
pub fn print(objects: &[Value], format: OutputFormat) -> String {
    let value = match objects {
        [one] => one.clone(),
        many => Value::Array(many.to_vec()),
    };
    match format {
        OutputFormat::Yaml => to_yaml(&value),
        OutputFormat::Json => to_json_pretty(&value),
    }
}

/// Go's `json.MarshalIndent(v, "", "  ")`.
pub fn to_json_pretty(value: &Value) -> String {
    go_escape(&serde_json::to_string_pretty(value).expect("JSON values always serialize"))
}

/// Go's `json.Marshal(v)`: compact, with HTML-sensitive characters escaped.
pub fn to_json_compact(value: &Value) -> String {
    go_escape(&serde_json::to_string(value).expect("JSON values always serialize"))
}

/// Go's encoder escapes these inside strings; they cannot occur outside
/// strings in JSON, so replacing them everywhere is exact.
fn go_escape(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: &str = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  cidr: 10.0.0.0/16\n";

    #[test]
    fn multi_document_yaml() {
        let text = format!(
            "---\n{POOL}---\n# only a comment\n---\n{}",
            POOL.replace("name: p", "name: q")
        );
        let docs = parse_documents("f.yaml", &text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].resource.metadata().name, "p");
        assert_eq!(docs[1].resource.metadata().name, "q");
        assert_eq!(docs[1].index, 2);
        assert_eq!(docs[1].item, None);
    }

    #[test]
    fn lists_and_sequences() {
        let list = r#"
apiVersion: v1
kind: List
items:
- apiVersion: projectcalico.org/v3
  kind: GlobalNetworkSet
  metadata: {name: a}
- apiVersion: projectcalico.org/v3
  kind: Tier
  metadata: {name: t}
"#;
        let docs = parse_documents("l.yaml", list).unwrap();
        assert_eq!(
            docs.iter().map(|d| d.resource.kind()).collect::<Vec<_>>(),
            vec![Kind::GlobalNetworkSet, Kind::Tier]
        );
        assert_eq!(docs[1].item, Some(1));

        let typed = "apiVersion: projectcalico.org/v3\nkind: IPPoolList\nmetadata:\n  resourceVersion: \"5\"\nitems:\n- metadata: {name: a}\n  spec: {cidr: 10.0.0.0/16}\n";
        let docs = parse_documents("l.yaml", typed).unwrap();
        assert_eq!(docs[0].resource.kind(), Kind::IpPool);

        let seq = "- apiVersion: projectcalico.org/v3\n  kind: Tier\n  metadata: {name: a}\n- apiVersion: projectcalico.org/v3\n  kind: Tier\n  metadata: {name: b}\n";
        assert_eq!(parse_documents("s.yaml", seq).unwrap().len(), 2);
    }

    #[test]
    fn json_input() {
        let text = r#"{"apiVersion": "projectcalico.org/v3", "kind": "Tier", "metadata": {"name": "a"}}
{"apiVersion": "projectcalico.org/v3", "kind": "Tier", "metadata": {"name": "b"}}"#;
        let docs = parse_documents("t.json", text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].index, 1);
        let flow_yaml = "{apiVersion: projectcalico.org/v3, kind: Tier, metadata: {name: c}}";
        assert_eq!(
            parse_documents("t.yaml", flow_yaml).unwrap()[0]
                .resource
                .metadata()
                .name,
            "c"
        );
    }

    #[test]
    fn errors_carry_path_and_line() {
        let text = format!(
            "{POOL}---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata:\n  name: p\n  namespace: ns\nspec:\n  ingress:\n  - action: Allow\n    destination:\n      portz: [80]\n"
        );
        let e = parse_documents("policy.yaml", &text).unwrap_err();
        assert_eq!(e.document, Some(1));
        assert_eq!(e.path.as_deref(), Some("spec.ingress[0].destination.portz"));
        assert_eq!(e.line, Some(17), "{e}");
        let shown = e.to_string();
        assert!(shown.starts_with("policy.yaml:17:"), "{shown}");
        assert!(
            shown.contains("document 2: spec.ingress[0].destination.portz: unknown field `portz`"),
            "{shown}"
        );
    }

    #[test]
    fn error_cases() {
        let cases: &[(&str, &str)] = &[
            ("kind: IPPool\nmetadata: {name: a}\n", "missing apiVersion"),
            (
                "apiVersion: projectcalico.org/v3\nkind: IPPol\n",
                "unknown resource type",
            ),
            (
                "apiVersion: projectcalico.org/v3\nkind: IPPool\nspec: [\n",
                "invalid YAML/JSON",
            ),
            (
                "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: a}\nspec: {blockSize: big}\n",
                "spec.blockSize: invalid type",
            ),
            (
                "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: a}\nspec: {ipipMode: Sometimes}\n",
                "unknown variant `Sometimes`",
            ),
            (
                "apiVersion: v1\nkind: List\nitems:\n- metadata: {name: a}\n",
                "item 1: missing apiVersion",
            ),
            (
                "{\"apiVersion\": \"projectcalico.org/v3\", \"kind\": \"Tier\", \"metadata\": {\"name\": \"a\"}, \"spec\": {\"ordr\": 1}}",
                "t:1:",
            ),
            ("- 5\n", "a resource must be a mapping"),
        ];
        for (text, want) in cases {
            let e = parse_documents("t", text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: got {e:?}, want {want:?}");
        }
    }

    #[test]
    fn list_item_errors_name_the_item() {
        let text = "apiVersion: projectcalico.org/v3\nkind: TierList\nitems:\n- metadata: {name: a}\n- metadata: {name: b}\n  spec: {ordr: 1}\n";
        let e = parse_documents("t", text).unwrap_err();
        assert_eq!(e.item, Some(1));
        assert_eq!(e.path.as_deref(), Some("items[1].spec.ordr"));
        assert_eq!(e.line, Some(6));
    }

    #[test]
    fn printing_like_calicoctl() {
        let r = parse_resources("t", POOL).unwrap();
        let list = list_value(Kind::IpPool, &r, "42");
        let yaml = print(std::slice::from_ref(&list), OutputFormat::Yaml);
        assert_eq!(
            yaml,
            "apiVersion: projectcalico.org/v3\nitems:\n- apiVersion: projectcalico.org/v3\n  kind: IPPool\n  metadata:\n    name: p\n  spec:\n    cidr: 10.0.0.0/16\nkind: IPPoolList\nmetadata:\n  resourceVersion: \"42\"\n"
        );
        let json = print(&[list], OutputFormat::Json);
        assert!(json.starts_with("{\n  \"kind\": \"IPPoolList\",\n  \"apiVersion\": \"projectcalico.org/v3\",\n  \"metadata\": {\n    \"resourceVersion\": \"42\"\n  },\n  \"items\": ["), "{json}");
        let two = print(
            &[r[0].to_json_value(), r[0].to_json_value()],
            OutputFormat::Yaml,
        );
        assert!(
            two.starts_with("- apiVersion: projectcalico.org/v3\n"),
            "{two}"
        );
    }

    #[test]
    fn go_html_escaping() {
        let v = serde_json::json!({"selector": "a == 'x' && b < 3"});
        assert_eq!(
            to_json_compact(&v),
            r#"{"selector":"a == 'x' \u0026\u0026 b \u003c 3"}"#
        );
    }
}
