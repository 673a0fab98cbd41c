//! Recursive-descent parser: `||` binds loosest, then `&&`, then a single
//! (possibly negated) operation or parenthesised group.

use std::collections::BTreeSet;

use crate::ParseError;
use crate::expr::Expr;
use crate::tokenizer::{Lexer, Token, TokenKind};

/// How deeply parentheses may nest. Calico sets no limit; one is needed here
/// so that hostile input cannot exhaust the stack. Real selectors stay in
/// single digits.
pub const MAX_NESTING: usize = 128;

pub(crate) fn parse(input: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser::new(input)?;
    if parser.tok.kind == TokenKind::Eof {
        return Ok(Expr::All);
    }
    let expr = parser.parse_or()?;
    match parser.tok.kind {
        TokenKind::Eof => Ok(expr),
        TokenKind::RParen => {
            Err(parser.error_here("unexpected ')' with no matching '('".to_owned()))
        }
        found => Err(parser.error_here(format!(
            "expected '&&', '||' or the end of the selector, found {found}"
        ))),
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    /// The one token of look-ahead.
    tok: Token<'a>,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Result<Self, ParseError> {
        let mut lexer = Lexer::new(input);
        let tok = lexer.next_token()?;
        Ok(Parser {
            lexer,
            tok,
            depth: 0,
        })
    }

    /// Moves past the current token, returning it.
    fn advance(&mut self) -> Result<Token<'a>, ParseError> {
        let next = self.lexer.next_token()?;
        Ok(std::mem::replace(&mut self.tok, next))
    }

    fn error_here(&self, message: String) -> ParseError {
        ParseError {
            position: self.tok.start,
            message,
        }
    }

    fn parse_or(&mut self) -> Result<Expr, ParseError> {
        let first = self.parse_and()?;
        if self.tok.kind != TokenKind::Or {
            return Ok(first);
        }
        let mut operands = vec![first];
        while self.tok.kind == TokenKind::Or {
            self.advance()?;
            operands.push(self.parse_and()?);
        }
        Ok(Expr::Or(operands))
    }

    fn parse_and(&mut self) -> Result<Expr, ParseError> {
        let first = self.parse_operation()?;
        if self.tok.kind != TokenKind::And {
            return Ok(first);
        }
        let mut operands = vec![first];
        while self.tok.kind == TokenKind::And {
            self.advance()?;
            operands.push(self.parse_operation()?);
        }
        Ok(Expr::And(operands))
    }

    fn parse_operation(&mut self) -> Result<Expr, ParseError> {
        let mut negated = false;
        while self.tok.kind == TokenKind::Not {
            negated = !negated;
            self.advance()?;
        }
        let expr = match self.tok.kind {
            TokenKind::Has(key) => {
                self.advance()?;
                Expr::Has {
                    key: key.to_owned(),
                }
            }
            TokenKind::All => {
                self.advance()?;
                Expr::All
            }
            TokenKind::Global => {
                self.advance()?;
                Expr::Global
            }
            TokenKind::Label(key) => {
                self.advance()?;
                self.parse_comparison(key)?
            }
            TokenKind::LParen => {
                let open = self.advance()?;
                if self.depth == MAX_NESTING {
                    return Err(ParseError {
                        position: open.start,
                        message: format!("parentheses nested more than {MAX_NESTING} deep"),
                    });
                }
                self.depth += 1;
                let inner = self.parse_or()?;
                self.depth -= 1;
                if self.tok.kind != TokenKind::RParen {
                    return Err(self.error_here(format!(
                        "expected ')' to close '(' at {}, found {}",
                        open.start, self.tok.kind
                    )));
                }
                self.advance()?;
                inner
            }
            found => {
                return Err(self.error_here(format!(
                    "expected a label key, '!', '(', 'has(..)', 'all()' or 'global()', found {found}"
                )));
            }
        };
        Ok(if negated {
            Expr::Not(Box::new(expr))
        } else {
            expr
        })
    }

    /// Parses what follows label `key`: an operator and its operand.
    fn parse_comparison(&mut self, key: &str) -> Result<Expr, ParseError> {
        let op = self.tok.kind;
        let make: fn(String, String) -> Expr = match op {
            TokenKind::Eq => |key, value| Expr::Equals { key, value },
            TokenKind::Ne => |key, value| Expr::NotEquals { key, value },
            TokenKind::Contains => |key, value| Expr::Contains { key, value },
            TokenKind::StartsWith => |key, value| Expr::StartsWith { key, value },
            TokenKind::EndsWith => |key, value| Expr::EndsWith { key, value },
            TokenKind::In | TokenKind::NotIn => {
                self.advance()?;
                let values = self.parse_set(op)?;
                let key = key.to_owned();
                return Ok(if op == TokenKind::In {
                    Expr::In { key, values }
                } else {
                    Expr::NotIn { key, values }
                });
            }
            found => {
                return Err(self.error_here(format!(
                    "expected an operator after label '{key}' (one of ==, !=, in, not in, \
                     contains, starts with, ends with), found {found}"
                )));
            }
        };
        self.advance()?;
        match self.tok.kind {
            TokenKind::String(value) => {
                self.advance()?;
                Ok(make(key.to_owned(), value.to_owned()))
            }
            found => Err(self.error_here(format!(
                "expected a quoted string after {op}, found {found}"
            ))),
        }
    }

    /// Parses `{"a", "b", ...}` (a trailing comma is allowed, as in Calico).
    fn parse_set(&mut self, op: TokenKind<'_>) -> Result<BTreeSet<String>, ParseError> {
        if self.tok.kind != TokenKind::LBrace {
            return Err(self.error_here(format!(
                "expected '{{' to start the set after {op}, found {}",
                self.tok.kind
            )));
        }
        self.advance()?;
        let mut values = BTreeSet::new();
        while let TokenKind::String(value) = self.tok.kind {
            self.advance()?;
            values.insert(value.to_owned());
            if self.tok.kind != TokenKind::Comma {
                break;
            }
            self.advance()?;
        }
        if self.tok.kind != TokenKind::RBrace {
            return Err(self.error_here(format!(
                "expected a quoted string, ',' or '}}' in the set, found {}",
                self.tok.kind
            )));
        }
        self.advance()?;
        Ok(values)
    }
}
