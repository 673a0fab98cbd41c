//! The model in nft's script syntax (what `nft -f` reads).
//!
//! Every piece implements `Display`; a whole transaction is rendered by
//! [`crate::Transaction::render`]. Host addresses are written without a
//! prefix length (nft refuses `/32` in sets without the interval flag), and
//! marks in hexadecimal as nft lists them.

use std::fmt::{self, Display, Formatter, Write};

use ipnet::IpNet;

use crate::model::{
    BaseChain, CtState, IpFamily, Key, Log, Match, Rhs, Rule, Statement, Value, Verdict,
};

/// Writes `value`; integers in hexadecimal when `hex`.
fn write_value(f: &mut Formatter<'_>, value: &Value, hex: bool) -> fmt::Result {
    match value {
        Value::Name(name) => write!(f, "\"{name}\""),
        Value::Net(net) if net.prefix_len() == net.max_prefix_len() => write!(f, "{}", net.addr()),
        Value::Net(net) => write!(f, "{}/{}", net.network(), net.prefix_len()),
        Value::AddrRange(lo, hi) => write!(f, "{lo}-{hi}"),
        Value::Int(n) if hex => write!(f, "0x{n:08x}"),
        Value::Int(n) => write!(f, "{n}"),
        Value::Range(lo, hi) if hex => write!(f, "0x{lo:08x}-0x{hi:08x}"),
        Value::Range(lo, hi) => write!(f, "{lo}-{hi}"),
        Value::CtState(state) => write!(f, "{state}"),
        Value::Concat(parts) => {
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    f.write_str(" . ")?;
                }
                write_value(f, part, hex)?;
            }
            Ok(())
        }
    }
}

impl Display for Value {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_value(f, self, false)
    }
}

impl Display for CtState {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (state, name) in CtState::NAMES {
            if self.0 & state.0 != 0 {
                if !first {
                    f.write_char(',')?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        let unknown = self.0 & !CtState::NAMES.iter().fold(0, |acc, (s, _)| acc | s.0);
        if unknown != 0 || first {
            if !first {
                f.write_char(',')?;
            }
            write!(f, "0x{unknown:x}")?;
        }
        Ok(())
    }
}

fn family_proto(family: IpFamily) -> (&'static str, &'static str) {
    match family {
        IpFamily::V4 => ("ip", "icmp"),
        IpFamily::V6 => ("ip6", "icmpv6"),
    }
}

impl Display for Key {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Key::Iifname => f.write_str("iifname"),
            Key::Oifname => f.write_str("oifname"),
            Key::Saddr(fam) => write!(f, "{} saddr", family_proto(*fam).0),
            Key::Daddr(fam) => write!(f, "{} daddr", family_proto(*fam).0),
            Key::L4Proto => f.write_str("meta l4proto"),
            Key::Sport(proto) => write!(f, "{} sport", proto.nft_name()),
            Key::Dport(proto) => write!(f, "{} dport", proto.nft_name()),
            Key::IcmpType(fam) => write!(f, "{} type", family_proto(*fam).1),
            Key::IcmpCode(fam) => write!(f, "{} code", family_proto(*fam).1),
            Key::CtState => f.write_str("ct state"),
            Key::Mark { mask: u32::MAX } => f.write_str("meta mark"),
            Key::Mark { mask } => write!(f, "meta mark & 0x{mask:08x}"),
            Key::Concat(parts) => {
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" . ")?;
                    }
                    write!(f, "{part}")?;
                }
                Ok(())
            }
        }
    }
}

fn write_rhs(f: &mut Formatter<'_>, rhs: &Rhs, hex: bool) -> fmt::Result {
    match rhs {
        Rhs::One(value) => write_value(f, value, hex),
        Rhs::AnyOf(values) => {
            f.write_str("{ ")?;
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write_value(f, value, hex)?;
            }
            f.write_str(" }")
        }
        Rhs::Set(name) => write!(f, "@{name}"),
    }
}

impl Display for Match {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.key)?;
        let masked = matches!(self.key, Key::Mark { mask } if mask != u32::MAX);
        // A bare operand after a masked key would be ambiguous; equality is
        // spelled out there. Elsewhere the implicit operator is used, which
        // for `ct state` means "any of these bits" (what `==` would not).
        match (self.negate, masked) {
            (true, _) => f.write_str("!= ")?,
            (false, true) => f.write_str("== ")?,
            (false, false) => {}
        }
        write_rhs(f, &self.rhs, matches!(self.key, Key::Mark { .. }))
    }
}

impl Display for Verdict {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Accept => f.write_str("accept"),
            Verdict::Drop => f.write_str("drop"),
            Verdict::Return => f.write_str("return"),
            Verdict::Jump(chain) => write!(f, "jump {chain}"),
            Verdict::Goto(chain) => write!(f, "goto {chain}"),
        }
    }
}

impl Display for Log {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("log")?;
        if let Some(prefix) = &self.prefix {
            write!(f, " prefix \"{prefix}\"")?;
        }
        if let Some(group) = self.group {
            write!(f, " group {group}")?;
        }
        Ok(())
    }
}

impl Display for Statement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Statement::Match(m) => write!(f, "{m}"),
            Statement::Counter => f.write_str("counter"),
            Statement::Log(log) => write!(f, "{log}"),
            Statement::SetMark { mask, value } => {
                // The forms nft lists back: a plain value when every bit is
                // replaced; `& keep` when only clearing; `| value` when only
                // setting; otherwise `& keep | value` with `keep` including
                // `value`'s bits, as the kernel's mask/xor pair prints.
                let keep = !mask | value;
                if *mask == u32::MAX {
                    write!(f, "meta mark set 0x{value:08x}")
                } else if *value == 0 {
                    write!(f, "meta mark set meta mark & 0x{keep:08x}")
                } else if keep == u32::MAX {
                    write!(f, "meta mark set meta mark | 0x{value:08x}")
                } else {
                    write!(f, "meta mark set meta mark & 0x{keep:08x} | 0x{value:08x}")
                }
            }
            Statement::Verdict(v) => write!(f, "{v}"),
            Statement::Vmap { key, map } => write!(f, "{key} vmap @{map}"),
        }
    }
}

impl Display for Rule {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, statement) in self.statements.iter().enumerate() {
            if i > 0 {
                f.write_char(' ')?;
            }
            write!(f, "{statement}")?;
        }
        if let Some(comment) = &self.comment {
            if !self.statements.is_empty() {
                f.write_char(' ')?;
            }
            write!(f, "comment \"{comment}\"")?;
        }
        Ok(())
    }
}

impl Display for BaseChain {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{ type {} hook {} priority {}; policy {}; }}",
            self.kind.nft_name(),
            self.hook.nft_name(),
            self.priority,
            self.policy.nft_name()
        )
    }
}

/// `net` as nft prints it (no `/32` or `/128` for a host).
pub fn net_to_string(net: &IpNet) -> String {
    Value::Net(*net).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PortProto;

    fn rule_text(rule: Rule) -> String {
        rule.to_string()
    }

    #[test]
    fn statements_render_as_nft_reads_them() {
        let v4 = |s: &str| Value::Net(s.parse().unwrap());
        let cases: Vec<(Rule, &str)> = vec![
            (
                Rule::new()
                    .matching(Key::Iifname, Value::name("eth0"))
                    .accept(),
                r#"iifname "eth0" accept"#,
            ),
            (
                Rule::new()
                    .not_matching(Key::Oifname, Value::name("cali*"))
                    .drop(),
                r#"oifname != "cali*" drop"#,
            ),
            (
                Rule::new()
                    .matching(Key::Saddr(IpFamily::V4), v4("10.0.0.0/8"))
                    .ret(),
                "ip saddr 10.0.0.0/8 return",
            ),
            (
                Rule::new()
                    .matching(Key::Daddr(IpFamily::V4), v4("10.0.0.1/32"))
                    .accept(),
                "ip daddr 10.0.0.1 accept",
            ),
            (
                Rule::new()
                    .not_matching(Key::Saddr(IpFamily::V6), Rhs::set("cali60s-x"))
                    .accept(),
                "ip6 saddr != @cali60s-x accept",
            ),
            (
                Rule::new()
                    .matching(
                        Key::Dport(PortProto::Tcp),
                        Rhs::any_of([Value::port(443), Value::port(80)]),
                    )
                    .counter()
                    .accept(),
                "tcp dport { 80, 443 } counter accept",
            ),
            (
                Rule::new()
                    .matching(Key::Sport(PortProto::Th), Value::ports(1000, 2000))
                    .accept(),
                "th sport 1000-2000 accept",
            ),
            (
                Rule::new()
                    .matching(
                        Key::CtState,
                        Value::CtState(CtState::ESTABLISHED | CtState::RELATED),
                    )
                    .accept(),
                "ct state established,related accept",
            ),
            (
                Rule::new()
                    .matching(Key::IcmpType(IpFamily::V4), Value::Int(8))
                    .matching(Key::IcmpCode(IpFamily::V4), Value::Int(0))
                    .accept(),
                "icmp type 8 icmp code 0 accept",
            ),
            (
                Rule::new()
                    .matching(Key::IcmpType(IpFamily::V6), Value::Int(128))
                    .accept(),
                "icmpv6 type 128 accept",
            ),
            (
                Rule::new()
                    .matching(Key::Mark { mask: 0x10 }, Value::Int(0x10))
                    .ret(),
                "meta mark & 0x00000010 == 0x00000010 return",
            ),
            (
                Rule::new().not_matching(Key::MARK, Value::Int(5)).accept(),
                "meta mark != 0x00000005 accept",
            ),
            (
                Rule::new().set_mark(u32::MAX, 0x10),
                "meta mark set 0x00000010",
            ),
            (
                Rule::new().set_mark(0xff00, 0),
                "meta mark set meta mark & 0xffff00ff",
            ),
            (
                Rule::new().set_mark(0x100, 0x100),
                "meta mark set meta mark | 0x00000100",
            ),
            (
                Rule::new().set_mark(0xff00, 0x100),
                "meta mark set meta mark & 0xffff01ff | 0x00000100",
            ),
            (
                Rule::new().vmap(Key::Iifname, "cali-from-wl"),
                "iifname vmap @cali-from-wl",
            ),
            (
                Rule::new()
                    .matching(
                        Key::Concat(vec![
                            Key::Daddr(IpFamily::V4),
                            Key::L4Proto,
                            Key::Dport(PortProto::Th),
                        ]),
                        Rhs::set("named-port"),
                    )
                    .accept()
                    .comment("named port"),
                r#"ip daddr . meta l4proto . th dport @named-port accept comment "named port""#,
            ),
            (
                Rule::new().log("calico-drop: ").drop(),
                r#"log prefix "calico-drop: " drop"#,
            ),
            (
                Rule::new()
                    .then(Statement::Log(Log {
                        prefix: None,
                        group: Some(3),
                    }))
                    .goto("cali-tw-x"),
                "log group 3 goto cali-tw-x",
            ),
        ];
        for (rule, want) in cases {
            assert_eq!(rule_text(rule), want);
        }
    }

    #[test]
    fn base_chain_spec() {
        let base = BaseChain::filter(
            crate::model::Hook::Forward,
            -150,
            crate::model::Policy::Drop,
        );
        assert_eq!(
            base.to_string(),
            "{ type filter hook forward priority -150; policy drop; }"
        );
    }

    #[test]
    fn ct_state_with_unknown_bits_is_still_readable() {
        assert_eq!(CtState(2 | 0x80).to_string(), "established,0x80");
    }
}
