//! Splits selector text into tokens, one at a time, as the parser asks.
//!
//! The language is context sensitive in one place: the operator words
//! (`contains`, `starts with`, `ends with`, `in`, `not in`) are recognised
//! only straight after a label key; anywhere else those words are label keys
//! themselves. Whitespace is spaces and tabs only.

use std::fmt;

use crate::ParseError;

/// The longest label key accepted, in bytes.
pub const MAX_LABEL_KEY_LEN: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind<'a> {
    Label(&'a str),
    String(&'a str),
    Has(&'a str),
    All,
    Global,
    LBrace,
    RBrace,
    Comma,
    Eq,
    Ne,
    In,
    NotIn,
    Contains,
    StartsWith,
    EndsWith,
    Not,
    LParen,
    RParen,
    And,
    Or,
    Eof,
}

impl fmt::Display for TokenKind<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenKind::Label(key) => write!(f, "label '{key}'"),
            TokenKind::String(value) => write!(f, "string {}", quoted(value)),
            TokenKind::Has(key) => write!(f, "'has({key})'"),
            TokenKind::All => f.write_str("'all()'"),
            TokenKind::Global => f.write_str("'global()'"),
            TokenKind::LBrace => f.write_str("'{'"),
            TokenKind::RBrace => f.write_str("'}'"),
            TokenKind::Comma => f.write_str("','"),
            TokenKind::Eq => f.write_str("'=='"),
            TokenKind::Ne => f.write_str("'!='"),
            TokenKind::In => f.write_str("'in'"),
            TokenKind::NotIn => f.write_str("'not in'"),
            TokenKind::Contains => f.write_str("'contains'"),
            TokenKind::StartsWith => f.write_str("'starts with'"),
            TokenKind::EndsWith => f.write_str("'ends with'"),
            TokenKind::Not => f.write_str("'!'"),
            TokenKind::LParen => f.write_str("'('"),
            TokenKind::RParen => f.write_str("')'"),
            TokenKind::And => f.write_str("'&&'"),
            TokenKind::Or => f.write_str("'||'"),
            TokenKind::Eof => f.write_str("the end of the selector"),
        }
    }
}

/// Wraps `value` in the quote character that the canonical form uses for it:
/// double quotes unless the value itself holds a double quote.
pub(crate) fn quote_char(value: &str) -> char {
    if value.contains('"') { '\'' } else { '"' }
}

fn quoted(value: &str) -> String {
    let q = quote_char(value);
    format!("{q}{value}{q}")
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Token<'a> {
    pub kind: TokenKind<'a>,
    /// Byte offset of the token's first character.
    pub start: usize,
}

#[derive(Debug)]
pub(crate) struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    /// The label key just emitted, if the previous token was a label: the
    /// only place where operator words are recognised.
    prev_label: Option<&'a str>,
}

/// Whether `c` may appear in a label key.
pub(crate) fn is_key_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'/' | b'-')
}

/// Whether `key` is a label key the language accepts: one or more of
/// `[a-zA-Z0-9_./-]`, at most [`MAX_LABEL_KEY_LEN`] bytes.
pub fn is_valid_label_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_LABEL_KEY_LEN && key.bytes().all(is_key_byte)
}

fn skip_blanks(s: &str, mut i: usize) -> usize {
    let bytes = s.as_bytes();
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
        i += 1;
    }
    i
}

/// End of the run of label-key bytes starting at `i`.
fn key_end(s: &str, mut i: usize) -> usize {
    let bytes = s.as_bytes();
    while i < bytes.len() && is_key_byte(bytes[i]) {
        i += 1;
    }
    i
}

fn at_word_boundary(s: &str, i: usize) -> bool {
    s.as_bytes().get(i).is_none_or(|&c| !is_key_byte(c))
}

impl<'a> Lexer<'a> {
    pub fn new(input: &'a str) -> Self {
        Lexer {
            input,
            pos: 0,
            prev_label: None,
        }
    }

    fn error(position: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            position,
            message: message.into(),
        }
    }

    /// Matches `words` at `i`, allowing any run of blanks (or none) after
    /// each word, and requiring a word boundary after the whole run.
    /// Returns the offset just past the match.
    fn match_words(&self, i: usize, words: &[&str]) -> Option<usize> {
        let s = self.input;
        let mut j = i;
        for word in words {
            if !s[j..].starts_with(word) {
                return None;
            }
            j = skip_blanks(s, j + word.len());
        }
        at_word_boundary(s, j).then_some(j)
    }

    /// Cuts a label key starting at `i`, returning it and its end.
    fn cut_key(&self, i: usize, context: &str) -> Result<(&'a str, usize), ParseError> {
        let s = self.input;
        let end = key_end(s, i);
        if end == i {
            let found = match s[i..].chars().next() {
                Some(c) => format!("'{c}'"),
                None => "the end of the selector".to_owned(),
            };
            return Err(Self::error(
                i,
                format!("expected a label key {context}, found {found}"),
            ));
        }
        if end - i > MAX_LABEL_KEY_LEN {
            return Err(Self::error(
                i,
                format!(
                    "label key is {} bytes long; the limit is {MAX_LABEL_KEY_LEN}",
                    end - i
                ),
            ));
        }
        Ok((&s[i..end], end))
    }

    /// Expects optional blanks and then `)` at `i`, closing `opened`.
    fn close_paren(&self, i: usize, opened: &str, opened_at: usize) -> Result<usize, ParseError> {
        let i = skip_blanks(self.input, i);
        if self.input.as_bytes().get(i) == Some(&b')') {
            Ok(i + 1)
        } else {
            Err(Self::error(
                i,
                format!("expected ')' to close '{opened}' at {opened_at}"),
            ))
        }
    }

    pub fn next_token(&mut self) -> Result<Token<'a>, ParseError> {
        let s = self.input;
        let start = skip_blanks(s, self.pos);
        let prev_label = self.prev_label.take();
        let Some(&first) = s.as_bytes().get(start) else {
            self.pos = start;
            return Ok(Token {
                kind: TokenKind::Eof,
                start,
            });
        };
        let rest = &s[start..];
        let (kind, end) = match first {
            b'(' => (TokenKind::LParen, start + 1),
            b')' => (TokenKind::RParen, start + 1),
            b'{' => (TokenKind::LBrace, start + 1),
            b'}' => (TokenKind::RBrace, start + 1),
            b',' => (TokenKind::Comma, start + 1),
            b'"' | b'\'' => {
                let body = start + 1;
                let Some(len) = s[body..].bytes().position(|c| c == first) else {
                    return Err(Self::error(
                        start,
                        format!(
                            "unterminated string starting at {start}: no closing {}",
                            first as char
                        ),
                    ));
                };
                (TokenKind::String(&s[body..body + len]), body + len + 1)
            }
            b'=' if rest.starts_with("==") => (TokenKind::Eq, start + 2),
            b'=' => {
                return Err(Self::error(
                    start,
                    "expected '==': a single '=' is not an operator",
                ));
            }
            b'!' if rest.starts_with("!=") => (TokenKind::Ne, start + 2),
            b'!' => (TokenKind::Not, start + 1),
            b'&' if rest.starts_with("&&") => (TokenKind::And, start + 2),
            b'&' => {
                return Err(Self::error(
                    start,
                    "expected '&&': a single '&' is not an operator",
                ));
            }
            b'|' if rest.starts_with("||") => (TokenKind::Or, start + 2),
            b'|' => {
                return Err(Self::error(
                    start,
                    "expected '||': a single '|' is not an operator",
                ));
            }
            _ => {
                if let Some(key) = prev_label {
                    self.operator_after(key, start)?
                } else if rest.starts_with("has(") {
                    let key_start = skip_blanks(s, start + 4);
                    let (key, key_end) = self.cut_key(key_start, "after 'has('")?;
                    let end = self.close_paren(key_end, "has(", start)?;
                    (TokenKind::Has(key), end)
                } else if rest.starts_with("all(") {
                    (TokenKind::All, self.close_paren(start + 4, "all(", start)?)
                } else if rest.starts_with("global(") {
                    (
                        TokenKind::Global,
                        self.close_paren(start + 7, "global(", start)?,
                    )
                } else {
                    let (key, end) =
                        self.cut_key(start, "or one of '(', '!', 'has(', 'all()', 'global()'")?;
                    self.prev_label = Some(key);
                    (TokenKind::Label(key), end)
                }
            }
        };
        self.pos = end;
        Ok(Token { kind, start })
    }

    /// Recognises the word operators that may follow label `key`.
    fn operator_after(
        &self,
        key: &str,
        start: usize,
    ) -> Result<(TokenKind<'a>, usize), ParseError> {
        const OPERATORS: [(&[&str], TokenKind<'static>); 5] = [
            (&["contains"], TokenKind::Contains),
            (&["starts", "with"], TokenKind::StartsWith),
            (&["ends", "with"], TokenKind::EndsWith),
            (&["not", "in"], TokenKind::NotIn),
            (&["in"], TokenKind::In),
        ];
        for (words, kind) in OPERATORS {
            // A single word must be followed by a boundary but its trailing
            // blanks are left for the next token; multi-word operators
            // swallow the blanks after their last word.
            let matched = if words.len() == 1 {
                let word = words[0];
                (self.input[start..].starts_with(word)
                    && at_word_boundary(self.input, start + word.len()))
                .then_some(start + word.len())
            } else {
                self.match_words(start, words)
            };
            if let Some(end) = matched {
                return Ok((kind, end));
            }
        }
        Err(Self::error(
            start,
            format!(
                "expected an operator after label '{key}' (one of ==, !=, in, not in, \
                 contains, starts with, ends with)"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(input: &str) -> Result<Vec<TokenKind<'_>>, ParseError> {
        let mut lexer = Lexer::new(input);
        let mut out = Vec::new();
        loop {
            let tok = lexer.next_token()?;
            out.push(tok.kind);
            if tok.kind == TokenKind::Eof {
                return Ok(out);
            }
        }
    }

    #[test]
    fn tokenizes_operators_and_literals() {
        use TokenKind::*;
        let cases: &[(&str, &[TokenKind<'_>])] = &[
            ("", &[Eof]),
            (" \t ", &[Eof]),
            ("a == 'b'", &[Label("a"), Eq, String("b"), Eof]),
            ("a!=\"b\"", &[Label("a"), Ne, String("b"), Eof]),
            ("a contains 'b'", &[Label("a"), Contains, String("b"), Eof]),
            (
                "a startswith 'b'",
                &[Label("a"), StartsWith, String("b"), Eof],
            ),
            (
                "a starts \t with 'b'",
                &[Label("a"), StartsWith, String("b"), Eof],
            ),
            ("a endswith'b'", &[Label("a"), EndsWith, String("b"), Eof]),
            ("a notin {}", &[Label("a"), NotIn, LBrace, RBrace, Eof]),
            (
                "a not  in {'x',}",
                &[Label("a"), NotIn, LBrace, String("x"), Comma, RBrace, Eof],
            ),
            ("a in{}", &[Label("a"), In, LBrace, RBrace, Eof]),
            ("has( k8s.io/x )", &[Has("k8s.io/x"), Eof]),
            ("all( )&&global()", &[All, And, Global, Eof]),
            ("!!has(a)||b", &[Not, Not, Has("a"), Or, Label("b"), Eof]),
            // Operator words are label keys unless they follow a label.
            ("in == 'x'", &[Label("in"), Eq, String("x"), Eof]),
            ("has == 'x'", &[Label("has"), Eq, String("x"), Eof]),
            ("has(a) contains", &[Has("a"), Label("contains"), Eof]),
            // Strings hold anything but their own quote.
            ("'a\"b'", &[String("a\"b"), Eof]),
            ("\"\"", &[String(""), Eof]),
        ];
        for (input, want) in cases {
            assert_eq!(kinds(input).as_deref(), Ok(*want), "input {input:?}");
        }
    }

    #[test]
    fn reports_tokenizer_errors_with_position() {
        let cases: &[(&str, usize, &str)] = &[
            ("a == \"b", 5, "unterminated string starting at 5"),
            ("a = 'b'", 2, "expected '=='"),
            ("a & b", 2, "expected '&&'"),
            ("a | b", 2, "expected '||'"),
            ("has()", 4, "expected a label key after 'has('"),
            ("has(foo", 7, "expected ')' to close 'has(' at 0"),
            (" all(", 5, "expected ')' to close 'all(' at 1"),
            ("global(x)", 7, "expected ')' to close 'global(' at 0"),
            ("a inf 'b'", 2, "expected an operator after label 'a'"),
            (
                "a ends withs 'b'",
                2,
                "expected an operator after label 'a'",
            ),
            ("%", 0, "expected a label key"),
            ("a == 'b' && é", 12, "found 'é'"),
        ];
        for (input, position, fragment) in cases {
            let err = kinds(input).expect_err(input);
            assert_eq!(err.position, *position, "input {input:?}: {err}");
            assert!(
                err.message.contains(fragment),
                "input {input:?}: {:?} lacks {fragment:?}",
                err.message
            );
        }
    }

    #[test]
    fn label_key_length_limit() {
        let ok = "k".repeat(MAX_LABEL_KEY_LEN);
        assert!(is_valid_label_key(&ok));
        assert!(kinds(&format!("{ok} == 'v'")).is_ok());
        let long = "k".repeat(MAX_LABEL_KEY_LEN + 1);
        assert!(!is_valid_label_key(&long));
        let err = kinds(&format!("{long} == 'v'")).unwrap_err();
        assert_eq!(err.position, 0);
        assert!(err.message.contains("513 bytes"), "{}", err.message);
        let err = kinds(&format!("has({long})")).unwrap_err();
        assert_eq!(err.position, 4);
    }

    #[test]
    fn label_key_alphabet() {
        for key in ["a", "A-9", "projectcalico.org/namespace", "_x.y/z-", "0"] {
            assert!(is_valid_label_key(key), "{key}");
        }
        for key in ["", "a b", "a:b", "é", "a\"", "a("] {
            assert!(!is_valid_label_key(key), "{key}");
        }
    }
}
