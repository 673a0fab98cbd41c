//! JSON as Calico writes it, to etcd and on calicoctl's output: Go's
//! `encoding/json`, which keeps field order, escapes `<`, `>` and `&` (so
//! selectors print `&&` as `\u0026\u0026`) and writes floats without a
//! trailing `.0`.

use serde_json::Value;

/// `json.MarshalIndent(v, "", "  ")`: no trailing newline, as calicoctl
/// prints it.
pub fn to_json_pretty(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, Some(0));
    out
}

/// `json.Marshal(v)`: compact, the form Calico stores in etcd.
pub fn to_json_compact(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, None);
    out
}

fn newline(out: &mut String, indent: Option<usize>) {
    if let Some(level) = indent {
        out.push('\n');
        for _ in 0..level {
            out.push_str("  ");
        }
    }
}

fn write_value(out: &mut String, value: &Value, indent: Option<usize>) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                out.push_str(&n.to_string());
            } else {
                out.push_str(&format_json_float(n.as_f64().unwrap_or(0.0)));
            }
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            let inner = indent.map(|l| l + 1);
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, inner);
                write_value(out, item, inner);
            }
            newline(out, indent);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            let inner = indent.map(|l| l + 1);
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, inner);
                write_string(out, key);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write_value(out, item, inner);
            }
            newline(out, indent);
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON number as Go's `encoding/json` writes a float64: plain digits
/// unless the exponent is below -6 or at least 21.
fn format_json_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        return format!("{}", f as i128);
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Go: 'e' format with the exponent's leading zero removed (1e-07 → 1e-7).
        let g = format!("{:e}", f);
        let (m, e) = g.split_once('e').expect("exponent");
        let e: i32 = e.parse().expect("integer exponent");
        let sign = if e < 0 { '-' } else { '+' };
        return format!("{m}e{sign}{:02}", e.abs())
            .replace("e-0", "e-")
            .replace("e+0", "e+");
    }
    format!("{f}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pretty_matches_go_marshal_indent() {
        let v = json!({"kind": "GlobalNetworkPolicy", "metadata": {"name": "a"},
                       "spec": {"selector": "a == 'x' && b < 'y'", "order": 100.5, "types": [], "x": {}}});
        let want = r#"{
  "kind": "GlobalNetworkPolicy",
  "metadata": {
    "name": "a"
  },
  "spec": {
    "selector": "a == 'x' \u0026\u0026 b \u003c 'y'",
    "order": 100.5,
    "types": [],
    "x": {}
  }
}"#;
        assert_eq!(to_json_pretty(&v), want);
    }

    #[test]
    fn floats_match_go() {
        assert_eq!(format_json_float(1000.0), "1000");
        assert_eq!(format_json_float(100.5), "100.5");
        assert_eq!(format_json_float(1e21), "1e+21");
        assert_eq!(format_json_float(1e-7), "1e-7");
    }

    #[test]
    fn compact_keeps_order_and_escapes() {
        let v = json!({"b": 1, "a": [true, null, "q\"\u{1}"]});
        assert_eq!(
            to_json_compact(&v),
            r#"{"b":1,"a":[true,null,"q\"\u0001"]}"#
        );
    }
}
