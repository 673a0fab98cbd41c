//! The YAML writer: text laid out byte for byte as Calico's tools print it.
//!
//! calicoctl turns a resource into JSON and the JSON into YAML with
//! go-yaml v2 (through `sigs.k8s.io/yaml`), so what users see has that
//! library's shape: mapping keys sorted (digits compared as numbers,
//! non-letters before letters), sequences inside mappings not indented,
//! empty collections as `{}` / `[]`, strings that would read back as
//! something else (`"123"`, `"true"`, `""`, timestamps) double-quoted,
//! strings a plain scalar cannot hold single-quoted, strings with line
//! breaks as literal blocks, long strings folded at spaces past column 80,
//! and whole-number floats written as integers. This module reproduces
//! that layout for any JSON value.

use std::cmp::Ordering;

use serde_json::Value;

use crate::gofmt::format_yaml_number;

/// Where go-yaml starts folding long scalars.
const BEST_WIDTH: usize = 80;
const BEST_INDENT: isize = 2;

/// The YAML text of `value`, ending with a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut e = Emitter {
        out: String::new(),
        column: 0,
        whitespace: true,
        indention: true,
        indent: -1,
    };
    e.node(value, Context::Root);
    // Document end: finish the last line.
    e.write_indent();
    e.out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Root,
    MappingKey,
    MappingValue,
    SequenceItem,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
}

/// A port of the parts of libyaml's emitter (as go-yaml v2 drives it) that
/// block-style documents use.
struct Emitter {
    out: String,
    /// Characters on the current line.
    column: usize,
    /// Whether the last character written was whitespace.
    whitespace: bool,
    /// Whether only indentation has been written on this line.
    indention: bool,
    indent: isize,
}

impl Emitter {
    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    fn write_str(&mut self, s: &str) {
        for c in s.chars() {
            self.put(c);
        }
    }

    fn write_indent(&mut self) {
        let indent = self.indent.max(0) as usize;
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    fn write_indicator(
        &mut self,
        s: &str,
        need_whitespace: bool,
        is_whitespace: bool,
        is_indention: bool,
    ) {
        if need_whitespace && !self.whitespace {
            self.put(' ');
        }
        self.write_str(s);
        self.whitespace = is_whitespace;
        self.indention = self.indention && is_indention;
    }

    /// go-yaml's `increase_indent`.
    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        if self.indent < 0 {
            self.indent = if flow { BEST_INDENT } else { 0 };
        } else if !indentless {
            self.indent += BEST_INDENT;
        }
    }

    fn node(&mut self, value: &Value, context: Context) {
        match value {
            Value::Object(map) if map.is_empty() => self.flow_empty("{}"),
            Value::Array(items) if items.is_empty() => self.flow_empty("[]"),
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| go_key_order(a.0, b.0));
                self.block_mapping(&entries);
            }
            Value::Array(items) => self.block_sequence(items, context),
            Value::String(s) => self.string_scalar(s, context),
            Value::Null => self.plain_scalar("null", context),
            Value::Bool(b) => self.plain_scalar(if *b { "true" } else { "false" }, context),
            Value::Number(n) => self.plain_scalar(&format_yaml_number(n), context),
        }
    }

    fn flow_empty(&mut self, text: &str) {
        let saved = self.indent;
        self.write_indicator(&text[..1], true, true, false);
        self.increase_indent(true, false);
        self.indent = saved;
        self.write_indicator(&text[1..], false, false, false);
    }

    fn block_mapping(&mut self, entries: &[(&String, &Value)]) {
        let saved = self.indent;
        self.increase_indent(false, false);
        for (key, value) in entries {
            self.write_indent();
            self.string_scalar(key, Context::MappingKey);
            self.write_indicator(":", false, false, false);
            self.node(value, Context::MappingValue);
        }
        self.indent = saved;
    }

    fn block_sequence(&mut self, items: &[Value], context: Context) {
        let saved = self.indent;
        let indentless = context == Context::MappingValue && !self.indention;
        self.increase_indent(false, indentless);
        for item in items {
            self.write_indent();
            self.write_indicator("-", true, false, true);
            self.node(item, Context::SequenceItem);
        }
        self.indent = saved;
    }

    /// A scalar go-yaml writes plain whatever it holds (numbers, booleans,
    /// null).
    fn plain_scalar(&mut self, text: &str, context: Context) {
        let saved = self.indent;
        self.increase_indent(true, false);
        self.write_plain(text, context != Context::MappingKey);
        self.indent = saved;
    }

    fn string_scalar(&mut self, s: &str, context: Context) {
        let simple_key = context == Context::MappingKey;
        let analysis = analyze(s);
        // go-yaml's encoder: multi-line strings ask for literal style,
        // strings that would read back as another type for double quotes,
        // the rest for plain.
        let mut style = if s.contains('\n') {
            Style::Literal
        } else if resolves_to_non_string(s) {
            Style::DoubleQuoted
        } else {
            Style::Plain
        };
        // libyaml's choice among what the content allows.
        if simple_key && analysis.multiline {
            style = Style::DoubleQuoted;
        }
        if style == Style::Plain && (!analysis.block_plain_allowed || (s.is_empty() && simple_key))
        {
            style = Style::SingleQuoted;
        }
        if style == Style::SingleQuoted && !analysis.single_quoted_allowed {
            style = Style::DoubleQuoted;
        }
        if style == Style::Literal && (!analysis.block_allowed || simple_key) {
            style = Style::DoubleQuoted;
        }

        let saved = self.indent;
        self.increase_indent(true, false);
        let allow_breaks = !simple_key;
        match style {
            Style::Plain => self.write_plain(s, allow_breaks),
            Style::SingleQuoted => self.write_single_quoted(s, allow_breaks),
            Style::DoubleQuoted => self.write_double_quoted(s, allow_breaks),
            Style::Literal => self.write_literal(s),
        }
        self.indent = saved;
    }

    fn write_plain(&mut self, s: &str, allow_breaks: bool) {
        if !self.whitespace {
            self.put(' ');
        }
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.whitespace = false;
        self.indention = false;
    }

    fn write_single_quoted(&mut self, s: &str, allow_breaks: bool) {
        self.write_indicator("'", true, false, false);
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i > 0
                    && i + 1 < chars.len()
                    && chars[i + 1] != ' '
                {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                if c == '\'' {
                    self.put('\'');
                }
                self.put(c);
                self.indention = false;
                spaces = false;
            }
        }
        self.write_indicator("'", false, false, false);
    }

    fn write_double_quoted(&mut self, s: &str, allow_breaks: bool) {
        self.write_indicator("\"", true, false, false);
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if !is_printable(c) || c == '\u{feff}' || is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                match c {
                    '\0' => self.put('0'),
                    '\u{7}' => self.put('a'),
                    '\u{8}' => self.put('b'),
                    '\t' => self.put('t'),
                    '\n' => self.put('n'),
                    '\u{b}' => self.put('v'),
                    '\u{c}' => self.put('f'),
                    '\r' => self.put('r'),
                    '\u{1b}' => self.put('e'),
                    '"' => self.put('"'),
                    '\\' => self.put('\\'),
                    '\u{85}' => self.put('N'),
                    '\u{a0}' => self.put('_'),
                    '\u{2028}' => self.put('L'),
                    '\u{2029}' => self.put('P'),
                    other => {
                        let v = other as u32;
                        let text = if v <= 0xff {
                            format!("x{v:02X}")
                        } else if v <= 0xffff {
                            format!("u{v:04X}")
                        } else {
                            format!("U{v:08X}")
                        };
                        self.write_str(&text);
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i > 0
                    && i + 1 < chars.len()
                {
                    self.write_indent();
                    if chars[i + 1] == ' ' {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.write_indicator("\"", false, false, false);
    }

    fn write_literal(&mut self, s: &str) {
        self.write_indicator("|", true, false, false);
        let chars: Vec<char> = s.chars().collect();
        if chars.first().is_some_and(|c| *c == ' ' || is_break(*c)) {
            self.write_indicator(&BEST_INDENT.to_string(), false, false, false);
        }
        let chomp = match chars.last() {
            None => Some("-"),
            Some(c) if !is_break(*c) => Some("-"),
            Some(_) if chars.len() == 1 => Some("+"),
            Some(_) if is_break(chars[chars.len() - 2]) => Some("+"),
            Some(_) => None,
        };
        if let Some(chomp) = chomp {
            self.write_indicator(chomp, false, false, false);
        }
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        for &c in &chars {
            if is_break(c) {
                self.put_break();
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                    breaks = false;
                }
                self.put(c);
                self.indention = false;
            }
        }
    }
}

/// What the characters of a scalar allow (libyaml's `analyze_scalar`, for
/// block context).
struct Analysis {
    multiline: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis {
            multiline: false,
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let chars: Vec<char> = s.chars().collect();
    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break, mut previous_space, mut previous_break) =
        (false, false, false, false);
    let (mut line_breaks, mut special_characters) = (false, false);
    let mut preceded_by_whitespace = true;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_whitespace = chars.get(i + 1).is_none_or(|n| *n == ' ' || *n == '\t');
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => block_indicators = true,
                '?' | ':' | '-' if followed_by_whitespace => block_indicators = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_whitespace => block_indicators = true,
                '#' if preceded_by_whitespace => block_indicators = true,
                _ => {}
            }
        }
        if !is_printable(c) {
            special_characters = true;
        }
        let last = i + 1 == chars.len();
        if c == ' ' {
            leading_space |= i == 0;
            trailing_space |= last;
            break_space |= previous_break;
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            line_breaks = true;
            leading_break |= i == 0;
            trailing_break |= last;
            space_break |= previous_space;
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = c == ' ' || c == '\t' || is_break(c);
    }
    let mut a = Analysis {
        multiline: line_breaks,
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    if space_break || special_characters {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
        a.block_allowed = false;
    }
    if line_breaks || block_indicators {
        a.block_plain_allowed = false;
    }
    a
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// libyaml's printable set (it excludes characters beyond the BMP).
fn is_printable(c: char) -> bool {
    let v = c as u32;
    v == 0x0a
        || (0x20..=0x7e).contains(&v)
        || (0xa0..=0xd7ff).contains(&v)
        || ((0xe000..=0xfffd).contains(&v) && v != 0xfeff)
}

/// Whether go-yaml v2 would read `s`, written plain, as something other
/// than a string (null, bool, int, float, timestamp, base-60 float).
fn resolves_to_non_string(s: &str) -> bool {
    const SPECIAL: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N",
        "no", "No", "NO", "off", "Off", "OFF", "true", "True", "TRUE", "false", "False", "FALSE",
        ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF", "<<",
    ];
    if SPECIAL.contains(&s) {
        return true;
    }
    let Some(first) = s.chars().next() else {
        return true;
    };
    match first {
        '.' => is_float_literal(s),
        '0'..='9' | '+' | '-' => {
            if is_timestamp(s) {
                return true;
            }
            let plain = s.replace('_', "");
            is_go_int(&plain) || is_float_literal(&plain) || is_base60_float(s)
        }
        _ => false,
    }
}

/// `strconv.ParseInt(s, 0, 64)` or `ParseUint` succeeding, plus go-yaml's
/// `0b` forms.
fn is_go_int(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body.is_empty() {
        return false;
    }
    let (digits, radix) =
        if let Some(rest) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (rest, 16)
        } else if let Some(rest) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
            (rest, 2)
        } else if let Some(rest) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
            (rest, 8)
        } else if body.len() > 1 && body.starts_with('0') {
            (&body[1..], 8)
        } else {
            (body, 10)
        };
    !digits.is_empty() && u64::from_str_radix(digits, radix).is_ok()
}

/// go-yaml's float pattern `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_float_literal(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// go-yaml's `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`.
fn is_base60_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    if i >= b.len() || !b[i].is_ascii_digit() {
        return false;
    }
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while i < b.len() && b[i] == b':' {
        i += 1;
        // `[0-5]?[0-9]`: one or two digits, a two-digit group starting 0-5.
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 2 {
            i += 1;
        }
        match i - start {
            1 => {}
            2 if b[start] <= b'5' => {}
            2 => i = start + 1,
            _ => return false,
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

/// go-yaml's timestamp forms: `2006-1-2`, `2006-1-2T15:4:5.999999999Z07:00`
/// (also with `t`), and `2006-1-2 15:4:5.999999999`.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    // Year: exactly four digits, then '-'.
    if b.len() < 8 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let mut i = 5;
    let num = |i: &mut usize, max: usize| -> bool {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() && *i - start < max {
            *i += 1;
        }
        *i > start
    };
    if !num(&mut i, 2) || i >= b.len() || b[i] != b'-' {
        return false;
    }
    i += 1;
    if !num(&mut i, 2) {
        return false;
    }
    if i == b.len() {
        return true;
    }
    let separator = b[i];
    if !matches!(separator, b'T' | b't' | b' ') {
        return false;
    }
    i += 1;
    for part in 0..3 {
        if !num(&mut i, 2) {
            return false;
        }
        if part < 2 {
            if i >= b.len() || b[i] != b':' {
                return false;
            }
            i += 1;
        }
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if !num(&mut i, 9) {
            return false;
        }
    }
    if separator == b' ' {
        return i == b.len();
    }
    // Zone: Z or ±hh:mm.
    if i < b.len() && b[i] == b'Z' {
        return i + 1 == b.len();
    }
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
        return num(&mut i, 2) && i < b.len() && b[i] == b':' && {
            i += 1;
            num(&mut i, 2) && i == b.len()
        };
    }
    false
}

/// go-yaml v2's map key order: runs of digits compare as numbers, and a
/// non-letter sorts before a letter.
fn go_key_order(a: &str, b: &str) -> Ordering {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            i += 1;
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i].cmp(&br[i]);
        }
        if al || bl {
            return if bl {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        let (mut an, mut bn): (i64, i64) = (0, 0);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an.wrapping_mul(10).wrapping_add(ar[ai] as i64 - '0' as i64);
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn.wrapping_mul(10).wrapping_add(br[bi] as i64 - '0' as i64);
            bi += 1;
        }
        if an != bn {
            return an.cmp(&bn);
        }
        if ai != bi {
            return ai.cmp(&bi);
        }
        return ar[i].cmp(&br[i]);
    }
    ar.len().cmp(&br.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resource_list_layout() {
        let v = json!({
            "kind": "IPPoolList",
            "apiVersion": "projectcalico.org/v3",
            "metadata": {"resourceVersion": "12"},
            "items": [{
                "kind": "IPPool",
                "apiVersion": "projectcalico.org/v3",
                "metadata": {"name": "default-ipv4-ippool", "uid": "0b4e", "resourceVersion": "10",
                             "creationTimestamp": "2024-01-02T03:04:05Z"},
                "spec": {"cidr": "192.168.0.0/16", "vxlanMode": "Never", "ipipMode": "Always",
                         "natOutgoing": true, "blockSize": 26, "nodeSelector": "all()",
                         "allowedUses": ["Workload", "Tunnel"]}
            }]
        });
        let want = "\
apiVersion: projectcalico.org/v3
items:
- apiVersion: projectcalico.org/v3
  kind: IPPool
  metadata:
    creationTimestamp: \"2024-01-02T03:04:05Z\"
    name: default-ipv4-ippool
    resourceVersion: \"10\"
    uid: 0b4e
  spec:
    allowedUses:
    - Workload
    - Tunnel
    blockSize: 26
    cidr: 192.168.0.0/16
    ipipMode: Always
    natOutgoing: true
    nodeSelector: all()
    vxlanMode: Never
kind: IPPoolList
metadata:
  resourceVersion: \"12\"
";
        assert_eq!(to_yaml(&v), want);
    }

    #[test]
    fn scalar_styles() {
        let cases: &[(Value, &str)] = &[
            (json!({"a": ""}), "a: \"\"\n"),
            (json!({"a": "true"}), "a: \"true\"\n"),
            (json!({"a": "yes"}), "a: \"yes\"\n"),
            (json!({"a": "123"}), "a: \"123\"\n"),
            (json!({"a": "1.5"}), "a: \"1.5\"\n"),
            (json!({"a": "0x1F"}), "a: \"0x1F\"\n"),
            (json!({"a": "80:59"}), "a: \"80:59\"\n"),
            (json!({"a": "80:90"}), "a: 80:90\n"),
            (json!({"a": "2024-01-02"}), "a: \"2024-01-02\"\n"),
            (json!({"a": "10.0.0.0/8"}), "a: 10.0.0.0/8\n"),
            (json!({"a": "fd00::/64"}), "a: fd00::/64\n"),
            (json!({"a": "::/0"}), "a: ::/0\n"),
            (json!({"a": "8000:8080"}), "a: 8000:8080\n"),
            (json!({"a": "1:20"}), "a: \"1:20\"\n"),
            (json!({"a": "1e3"}), "a: \"1e3\"\n"),
            (json!({"a": "1.2.3.4"}), "a: 1.2.3.4\n"),
            (json!({"a": "v1.2.3"}), "a: v1.2.3\n"),
            (
                json!({"a": "2024-01-02T03:04:05Z"}),
                "a: \"2024-01-02T03:04:05Z\"\n",
            ),
            (json!({"a": "!has(x)"}), "a: '!has(x)'\n"),
            (json!({"a": "app == 'web'"}), "a: app == 'web'\n"),
            (json!({"a": "'quoted'"}), "a: '''quoted'''\n"),
            (json!({"a": "x: y"}), "a: 'x: y'\n"),
            (json!({"a": "a #b"}), "a: 'a #b'\n"),
            (json!({"a": " lead"}), "a: ' lead'\n"),
            (json!({"a": "tab\there"}), "a: \"tab\\there\"\n"),
            (json!({"a": "env in {'a', 'b'}"}), "a: env in {'a', 'b'}\n"),
            (json!({"a": "- x"}), "a: '- x'\n"),
            (
                json!({"a": null, "b": false, "c": 2.5}),
                "a: null\nb: false\nc: 2.5\n",
            ),
            (json!({"a": {}, "b": []}), "a: {}\nb: []\n"),
            (json!({"a": "line1\nline2"}), "a: |-\n  line1\n  line2\n"),
            (json!({"a": "line1\n"}), "a: |\n  line1\n"),
            (json!({"a": "x\n\n"}), "a: |+\n  x\n\n"),
            (json!({"a": {"b": "x\ny\n"}}), "a:\n  b: |\n    x\n    y\n"),
        ];
        for (v, want) in cases {
            assert_eq!(to_yaml(v), *want, "{v}");
        }
    }

    #[test]
    fn nested_sequences_and_top_level_lists() {
        assert_eq!(
            to_yaml(&json!([{"a": 1}, {"b": [1, [2, 3]]}])),
            "- a: 1\n- b:\n  - 1\n  - - 2\n    - 3\n"
        );
        assert_eq!(to_yaml(&json!({})), "{}\n");
        assert_eq!(to_yaml(&json!([[]])), "- []\n");
    }

    #[test]
    fn long_plain_scalars_fold_past_column_80() {
        let selector = "projectcalico.org/orchestrator == 'k8s' && app == 'frontend' && tier in {'web', 'api'} && has(zone)";
        let out = to_yaml(&json!({"spec": {"selector": selector}}));
        let want = "spec:\n  selector: projectcalico.org/orchestrator == 'k8s' && app == 'frontend' && tier in\n    {'web', 'api'} && has(zone)\n";
        assert_eq!(out, want);
    }

    #[test]
    fn key_order_is_go_yamls() {
        let mut keys = vec!["b", "a10", "a9", "A", "_x", "a.b", "ab", "z1"];
        keys.sort_by(|a, b| go_key_order(a, b));
        assert_eq!(keys, vec!["_x", "A", "a.b", "a9", "a10", "ab", "b", "z1"]);
    }

    #[test]
    fn timestamps_and_numbers_detected() {
        assert!(is_timestamp("2024-01-02T03:04:05Z"));
        assert!(is_timestamp("2024-1-2t3:4:5.123+01:00"));
        assert!(is_timestamp("2024-01-02 03:04:05"));
        assert!(!is_timestamp("2024-01-02T03:04:05"));
        assert!(!is_timestamp("2024/01/02"));
        assert!(is_go_int("0755") && is_go_int("-12") && !is_go_int("08"));
        assert!(is_float_literal("08") && is_float_literal(".5") && !is_float_literal("1.2.3"));
        assert!(is_base60_float("1:20") && !is_base60_float("1:2:"));
    }
}
