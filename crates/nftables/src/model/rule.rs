//! Rules: a list of statements (matches, counters, logging, mark changes)
//! usually ending in a verdict.

use std::collections::BTreeSet;

use super::value::{DataType, Value, merge_anonymous};

/// IPv4 or IPv6, for address and ICMP matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpFamily {
    V4,
    V6,
}

/// The transport header a port match reads. `Th` reads the ports of
/// whatever transport protocol the packet has (to be combined with a
/// `meta l4proto` set match or a concatenation that includes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortProto {
    Tcp,
    Udp,
    Sctp,
    Th,
}

impl PortProto {
    pub fn nft_name(self) -> &'static str {
        match self {
            PortProto::Tcp => "tcp",
            PortProto::Udp => "udp",
            PortProto::Sctp => "sctp",
            PortProto::Th => "th",
        }
    }
}

/// What a match reads from the packet: the left-hand side of a match, the
/// key of a verdict-map lookup, or a part of a concatenation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// `iifname`
    Iifname,
    /// `oifname`
    Oifname,
    /// `ip saddr` / `ip6 saddr`
    Saddr(IpFamily),
    /// `ip daddr` / `ip6 daddr`
    Daddr(IpFamily),
    /// `meta l4proto`
    L4Proto,
    /// `tcp sport`, `udp sport`, `th sport`, ...
    Sport(PortProto),
    /// `tcp dport`, `udp dport`, `th dport`, ...
    Dport(PortProto),
    /// `icmp type` / `icmpv6 type`
    IcmpType(IpFamily),
    /// `icmp code` / `icmpv6 code`
    IcmpCode(IpFamily),
    /// `ct state`
    CtState,
    /// `meta mark`, or `meta mark & mask` when `mask` is not all ones.
    Mark { mask: u32 },
    /// `a . b . c`: compared against a set of concatenated values.
    Concat(Vec<Key>),
}

impl Key {
    /// `meta mark` without a mask.
    pub const MARK: Key = Key::Mark { mask: u32::MAX };

    /// The type of the values this key is compared with.
    pub fn data_type(&self) -> DataType {
        match self {
            Key::Iifname | Key::Oifname => DataType::IfName,
            Key::Saddr(IpFamily::V4) | Key::Daddr(IpFamily::V4) => DataType::Ipv4Addr,
            Key::Saddr(IpFamily::V6) | Key::Daddr(IpFamily::V6) => DataType::Ipv6Addr,
            Key::L4Proto => DataType::InetProto,
            Key::Sport(_) | Key::Dport(_) => DataType::InetService,
            Key::IcmpType(IpFamily::V4) => DataType::IcmpType,
            Key::IcmpType(IpFamily::V6) => DataType::Icmpv6Type,
            Key::IcmpCode(IpFamily::V4) => DataType::IcmpCode,
            Key::IcmpCode(IpFamily::V6) => DataType::Icmpv6Code,
            Key::CtState => DataType::CtState,
            Key::Mark { .. } => DataType::Mark,
            Key::Concat(parts) => DataType::Concat(parts.iter().map(Key::data_type).collect()),
        }
    }

    /// Whether reading this key makes nft depend on the transport protocol
    /// (a port or an ICMP field), directly or inside a concatenation.
    pub(crate) fn reads_transport_header(&self) -> bool {
        match self {
            Key::Sport(_) | Key::Dport(_) | Key::IcmpType(_) | Key::IcmpCode(_) => true,
            Key::Concat(parts) => parts.iter().any(Key::reads_transport_header),
            _ => false,
        }
    }
}

/// The right-hand side of a match.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rhs {
    /// One value (which may itself be a prefix or a range).
    One(Value),
    /// An anonymous set, `{ a, b }`. Build it with [`Rhs::any_of`], which
    /// puts it in the form nft stores it in.
    AnyOf(BTreeSet<Value>),
    /// A named set of the same table, `@name`.
    Set(String),
}

impl Rhs {
    /// An anonymous set of `values` in nft's canonical form: one value is
    /// just that value; intervals are merged as nft merges them.
    pub fn any_of(values: impl IntoIterator<Item = Value>) -> Rhs {
        let raw: BTreeSet<Value> = values.into_iter().collect();
        let merged = merge_anonymous(&raw).unwrap_or(raw);
        Rhs::from_merged(merged)
    }

    pub(crate) fn from_merged(mut merged: BTreeSet<Value>) -> Rhs {
        let concat = merged.iter().any(|v| matches!(v, Value::Concat(_)));
        if merged.len() == 1 && !concat {
            if let Some(only) = merged.pop_first() {
                return Rhs::One(only);
            }
        }
        Rhs::AnyOf(merged)
    }

    /// A reference to the named set `name`.
    pub fn set(name: impl Into<String>) -> Rhs {
        Rhs::Set(name.into())
    }
}

impl From<Value> for Rhs {
    fn from(value: Value) -> Rhs {
        Rhs::One(value)
    }
}

/// `key [!=] rhs`: a packet test.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Match {
    pub key: Key,
    /// `!=` instead of equality (or, for `ct state`, "none of").
    pub negate: bool,
    pub rhs: Rhs,
}

impl Match {
    pub fn eq(key: Key, rhs: impl Into<Rhs>) -> Match {
        Match {
            key,
            negate: false,
            rhs: rhs.into(),
        }
    }

    pub fn ne(key: Key, rhs: impl Into<Rhs>) -> Match {
        Match {
            key,
            negate: true,
            rhs: rhs.into(),
        }
    }
}

/// A verdict: the end of a rule, or the value of a verdict-map entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    Accept,
    Drop,
    Return,
    /// Continue in a chain of the same table, then come back.
    Jump(String),
    /// Continue in a chain of the same table, without coming back.
    Goto(String),
}

impl Verdict {
    /// The chain this verdict continues in, if any.
    pub fn target(&self) -> Option<&str> {
        match self {
            Verdict::Jump(chain) | Verdict::Goto(chain) => Some(chain),
            _ => None,
        }
    }

    pub fn jump(chain: impl Into<String>) -> Verdict {
        Verdict::Jump(chain.into())
    }

    pub fn goto(chain: impl Into<String>) -> Verdict {
        Verdict::Goto(chain.into())
    }
}

/// `log [prefix "..."] [group N]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Log {
    pub prefix: Option<String>,
    /// An NFLOG group: the packet goes to user space instead of the kernel log.
    pub group: Option<u16>,
}

/// One step of a rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Statement {
    Match(Match),
    /// An anonymous counter (its packet and byte counts are not part of the
    /// value: they are never compared).
    Counter,
    Log(Log),
    /// `meta mark set`: the bits in `mask` are replaced by those of `value`,
    /// the others are kept. `value` must lie within `mask`.
    SetMark {
        mask: u32,
        value: u32,
    },
    Verdict(Verdict),
    /// `key vmap @map`: look the key up in a verdict map and apply what is
    /// found (nothing if there is no entry).
    Vmap {
        key: Key,
        map: String,
    },
}

impl Statement {
    /// Whether this statement ends the rule (nothing may follow it).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Statement::Verdict(_) | Statement::Vmap { .. })
    }
}

/// A rule: statements evaluated left to right, and an optional comment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Rule {
    pub statements: Vec<Statement>,
    pub comment: Option<String>,
}

impl Rule {
    pub fn new() -> Rule {
        Rule::default()
    }

    /// Appends any statement.
    pub fn then(mut self, statement: Statement) -> Rule {
        self.statements.push(statement);
        self
    }

    /// Appends `key == rhs`.
    pub fn matching(self, key: Key, rhs: impl Into<Rhs>) -> Rule {
        self.then(Statement::Match(Match::eq(key, rhs)))
    }

    /// Appends `key != rhs`.
    pub fn not_matching(self, key: Key, rhs: impl Into<Rhs>) -> Rule {
        self.then(Statement::Match(Match::ne(key, rhs)))
    }

    pub fn counter(self) -> Rule {
        self.then(Statement::Counter)
    }

    pub fn log(self, prefix: impl Into<String>) -> Rule {
        self.then(Statement::Log(Log {
            prefix: Some(prefix.into()),
            group: None,
        }))
    }

    pub fn set_mark(self, mask: u32, value: u32) -> Rule {
        self.then(Statement::SetMark { mask, value })
    }

    pub fn verdict(self, verdict: Verdict) -> Rule {
        self.then(Statement::Verdict(verdict))
    }

    pub fn accept(self) -> Rule {
        self.verdict(Verdict::Accept)
    }

    pub fn drop(self) -> Rule {
        self.verdict(Verdict::Drop)
    }

    pub fn ret(self) -> Rule {
        self.verdict(Verdict::Return)
    }

    pub fn jump(self, chain: impl Into<String>) -> Rule {
        self.verdict(Verdict::Jump(chain.into()))
    }

    pub fn goto(self, chain: impl Into<String>) -> Rule {
        self.verdict(Verdict::Goto(chain.into()))
    }

    pub fn vmap(self, key: Key, map: impl Into<String>) -> Rule {
        self.then(Statement::Vmap {
            key,
            map: map.into(),
        })
    }

    pub fn comment(mut self, comment: impl Into<String>) -> Rule {
        self.comment = Some(comment.into());
        self
    }

    /// The named sets and maps this rule refers to.
    pub fn set_refs(&self) -> impl Iterator<Item = &str> {
        self.statements.iter().filter_map(|s| match s {
            Statement::Match(Match {
                rhs: Rhs::Set(name),
                ..
            }) => Some(name.as_str()),
            Statement::Vmap { map, .. } => Some(map.as_str()),
            _ => None,
        })
    }

    /// The chains this rule jumps or goes to.
    pub fn chain_refs(&self) -> impl Iterator<Item = &str> {
        self.statements.iter().filter_map(|s| match s {
            Statement::Verdict(v) => v.target(),
            _ => None,
        })
    }
}
