//! A YAML writer for JSON values that lays text out as Calico's tools do
//! (Go's YAML v2 emitter behind `sigs.k8s.io/yaml`): keys sorted, block
//! style, sequences not indented under their key, strings quoted with
//! double quotes only when they would otherwise read back as something
//! else, and multi-line strings as literal blocks.

use serde_json::Value;

/// Renders a value as a YAML document (ending with a newline).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => write_map(&mut out, value, 0),
        Value::Array(a) if !a.is_empty() => write_seq(&mut out, value, 0),
        scalar => {
            out.push_str(&inline(scalar, 0));
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A value that fits after `key: ` or `- ` on the same line.
fn inline(v: &Value, indent: usize) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar(s, indent),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
    }
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    }
}

fn write_map(out: &mut String, v: &Value, indent: usize) {
    let Value::Object(m) = v else { return };
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    for (i, k) in keys.into_iter().enumerate() {
        // The first key of a map inside a sequence item follows "- ".
        if i > 0 || !out.ends_with("- ") {
            pad(out, indent);
        }
        out.push_str(&scalar(k, indent));
        out.push(':');
        let val = &m[k];
        match val {
            Value::Object(_) if is_block(val) => {
                out.push('\n');
                write_map(out, val, indent + 2);
            }
            Value::Array(_) if is_block(val) => {
                out.push('\n');
                write_seq(out, val, indent);
            }
            _ => {
                out.push(' ');
                out.push_str(&inline(val, indent + 2));
                out.push('\n');
            }
        }
    }
}

fn write_seq(out: &mut String, v: &Value, indent: usize) {
    let Value::Array(items) = v else { return };
    for item in items {
        if !out.ends_with("- ") {
            pad(out, indent);
        }
        out.push_str("- ");
        match item {
            Value::Object(_) if is_block(item) => write_map(out, item, indent + 2),
            Value::Array(_) if is_block(item) => write_seq(out, item, indent + 2),
            _ => {
                out.push_str(&inline(item, indent + 2));
                out.push('\n');
            }
        }
    }
}

/// A string scalar: plain when it reads back as the same string, a
/// literal block when it has line breaks, otherwise double-quoted.
fn scalar(s: &str, indent: usize) -> String {
    if s.contains('\n') && s.chars().all(|c| c == '\n' || !c.is_control()) && !s.starts_with(' ') {
        return literal(s, indent);
    }
    if plain_ok(s) {
        s.to_string()
    } else {
        quoted(s)
    }
}

fn literal(s: &str, indent: usize) -> String {
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    let chomp = match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    };
    let mut out = format!("|{chomp}");
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.extend(std::iter::repeat_n(' ', indent.max(2)));
            out.push_str(line);
        }
    }
    // The caller ends the line; "|+" keeps the extra blank lines.
    for _ in 1..trailing {
        out.push('\n');
    }
    out
}

fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether a plain scalar would read back as this exact string.
fn plain_ok(s: &str) -> bool {
    if s.is_empty() || s.starts_with(' ') || s.ends_with(' ') || resolves_to_non_string(s) {
        return false;
    }
    let first = s.chars().next().expect("non-empty");
    if "#,[]{}&*!|>'\"%@`".contains(first) {
        return false;
    }
    if "-?:".contains(first) && (s.len() == 1 || s[1..].starts_with(' ')) {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return false;
    }
    s.chars().all(|c| !c.is_control() && c != '\u{feff}')
}

/// Whether Go's YAML v2 would read the plain text as a bool, null, number
/// or timestamp.
fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
        "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL", "~",
        ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
        ".NaN", ".NAN", "<<",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
        return false;
    }
    let unsigned = s.trim_start_matches(['+', '-']);
    let plain = unsigned.replace('_', "");
    let is_int = !plain.is_empty()
        && (plain.bytes().all(|b| b.is_ascii_digit())
            || plain
                .strip_prefix("0x")
                .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
            || plain
                .strip_prefix("0b")
                .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b == b'0' || b == b'1'))
            || plain
                .strip_prefix("0o")
                .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| (b'0'..=b'7').contains(&b))));
    if is_int
        || plain
            .parse::<f64>()
            .is_ok_and(|_| !plain.contains(char::is_alphabetic) || plain.contains(['e', 'E']))
    {
        return true;
    }
    is_base60(unsigned) || is_timestamp(s)
}

/// `1:20`, `190:20:30.15` (sexagesimal numbers in YAML 1.1).
fn is_base60(s: &str) -> bool {
    let mut parts = s.split(':');
    let Some(head) = parts.next() else {
        return false;
    };
    let head_ok = !head.is_empty()
        && head.as_bytes()[0].is_ascii_digit()
        && head.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    let mut count = 0;
    let tail_ok = parts.all(|p| {
        count += 1;
        let (int, frac) = p.split_once('.').unwrap_or((p, ""));
        (1..=2).contains(&int.len())
            && int.bytes().all(|b| b.is_ascii_digit())
            && (int.len() == 1 || int.as_bytes()[0] <= b'5')
            && frac.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    });
    head_ok && count > 0 && tail_ok
}

/// `2006-01-02`, `2006-01-02T15:04:05Z` and the other forms Go's YAML
/// reads as timestamps.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let date = b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit);
    if !date {
        return false;
    }
    let rest = &s[10..];
    rest.is_empty()
        || rest.starts_with(['T', 't', ' '])
            && rest.len() > 1
            && rest.as_bytes()[1].is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn layout() {
        let v = json!({
            "spec": {"cidr": "10.0.0.0/16", "allowedUses": ["Workload", "Tunnel"], "blockSize": 26, "natOutgoing": true},
            "metadata": {"name": "p", "labels": {}},
            "items": [{"b": 1, "a": [1, 2]}, [3], []],
        });
        assert_eq!(
            to_yaml(&v),
            "items:\n- a:\n  - 1\n  - 2\n  b: 1\n- - 3\n- []\nmetadata:\n  labels: {}\n  name: p\nspec:\n  allowedUses:\n  - Workload\n  - Tunnel\n  blockSize: 26\n  cidr: 10.0.0.0/16\n  natOutgoing: true\n"
        );
    }

    #[test]
    fn quoting() {
        let cases: &[(&str, &str)] = &[
            ("all()", "all()"),
            ("app == 'web' && has(x)", "app == 'web' && has(x)"),
            ("!has(x)", "\"!has(x)\""),
            ("42", "\"42\""),
            ("1.5", "\"1.5\""),
            ("1e3", "\"1e3\""),
            ("true", "\"true\""),
            ("yes", "\"yes\""),
            ("null", "\"null\""),
            ("", "\"\""),
            ("2024-01-02T03:04:05Z", "\"2024-01-02T03:04:05Z\""),
            ("1:20", "\"1:20\""),
            ("8000:8080", "8000:8080"),
            ("63400:300:100", "63400:300:100"),
            ("a: b", "\"a: b\""),
            ("- x", "\"- x\""),
            ("10.0.0.0/16", "10.0.0.0/16"),
            ("fd00::/64", "fd00::/64"),
            ("::/0", "::/0"),
            ("say \"hi\"", "say \"hi\""),
            ("\"q", "\"\\\"q\""),
            ("v1.2.3", "v1.2.3"),
            ("1.2.3.4", "1.2.3.4"),
        ];
        for (s, want) in cases {
            assert_eq!(scalar(s, 0), *want, "{s:?}");
        }
    }

    #[test]
    fn literal_blocks() {
        let v = json!({"a": {"note": "line1\nline2\n"}});
        assert_eq!(to_yaml(&v), "a:\n  note: |\n    line1\n    line2\n");
        let v = json!({"note": "x\ny"});
        assert_eq!(to_yaml(&v), "note: |-\n  x\n  y\n");
        let v = json!({"note": "x\n\n"});
        assert_eq!(to_yaml(&v), "note: |+\n  x\n\n");
    }
}
