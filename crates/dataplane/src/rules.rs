//! One compiled policy rule ([`RuleProgram`]) as nft rules, for one IP
//! family.
//!
//! A rule's criteria are a conjunction, but three of them are disjunctions
//! that one nft rule cannot express: a side's ports *or* its named ports,
//! and "not this ICMP type/code" (which holds for every non-ICMP packet).
//! Such a rule becomes one nft rule per combination of alternatives. For
//! Allow, Deny and Pass that is exact, since the first combination that
//! matches decides; a Log rule instead sets the scratch mark in each
//! combination and logs once if it is set, so a packet is logged once.
//!
//! How a verdict leaves a policy chain (as in Calico): Deny drops at once;
//! Allow sets the accept mark and returns, Pass the pass mark and returns,
//! and the endpoint chain that jumped here reads the marks.
//!
//! nft lists some forms back differently from how they were written (a
//! `meta l4proto` test folds into a following port test; adjacent port
//! tests merge). Rules are written in forms nft keeps, so that a ruleset
//! read back from the kernel equals the generated one: the protocol test
//! comes last, and a negated one-port test is written as a one-port range
//! when the other side has one too.

use std::collections::{BTreeMap, BTreeSet};

use calico_nftables::{IpFamily, Key, Match, PortProto, Rhs, Rule, Statement, Value};
use calico_policy::IpSetId;
use calico_policy::program::{
    Dataplane, IcmpMatch, IpSetMember, MatchSide, PortRange, RuleAction, RuleProgram,
};
use ipnet::IpNet;

use crate::config::Marks;
use crate::names;

/// Protocols whose packets carry ports, for port criteria on a rule that
/// names no protocol: TCP, UDP, DCCP, SCTP, UDP-Lite.
pub const PORT_PROTOCOLS: [u8; 5] = [6, 17, 33, 132, 136];

/// A nets list up to this long is written into the rule; a longer one
/// becomes a named set, so the rule stays one lookup and short to read.
pub const MAX_INLINE_NETS: usize = 8;

/// The IP family a table is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fam {
    pub v6: bool,
}

impl Fam {
    pub fn ip(self) -> IpFamily {
        if self.v6 { IpFamily::V6 } else { IpFamily::V4 }
    }

    /// ICMP's protocol number in this family.
    pub fn icmp_protocol(self) -> u8 {
        if self.v6 { 58 } else { 1 }
    }

    pub fn holds(self, net: &IpNet) -> bool {
        matches!(net, IpNet::V6(_)) == self.v6
    }
}

/// How a set is used: addresses, or (address, protocol, port) triples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SetUse {
    Addresses,
    NamedPorts,
}

/// What rendering needs and collects.
#[derive(Debug)]
pub struct RuleWriter<'a> {
    pub dp: &'a Dataplane,
    pub fam: Fam,
    pub marks: Marks,
    /// The log prefix as written (`calico-packet: `).
    pub log_prefix: String,
    /// Every named set a rendered rule refers to.
    pub sets_used: BTreeMap<IpSetId, SetUse>,
    /// Every IP set whose members a rendered rule depends on: the named
    /// sets it refers to and the nets written into it.
    pub sets_read: BTreeSet<IpSetId>,
}

/// The addresses of a set in one family, with nets inside other members
/// removed (an interval set may not hold overlapping elements; CIDRs either
/// nest or are disjoint, so dropping the inner ones keeps the union).
pub fn disjoint_nets(nets: impl IntoIterator<Item = IpNet>) -> Vec<IpNet> {
    let mut sorted: Vec<IpNet> = nets.into_iter().map(|n| n.trunc()).collect();
    sorted.sort_by(|a, b| {
        a.network()
            .cmp(&b.network())
            .then(a.prefix_len().cmp(&b.prefix_len()))
    });
    let mut out: Vec<IpNet> = Vec::with_capacity(sorted.len());
    for net in sorted {
        if out.last().is_some_and(|last| last.contains(&net)) {
            continue;
        }
        out.push(net);
    }
    out
}

/// Which header a port test reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortKey {
    /// `tcp dport` etc.: implies the protocol.
    Named(PortProto),
    /// `th dport`: protocol tested elsewhere.
    Th,
}

impl PortKey {
    fn proto(self) -> PortProto {
        match self {
            PortKey::Named(p) => p,
            PortKey::Th => PortProto::Th,
        }
    }
}

fn port_values(ranges: &[PortRange]) -> Rhs {
    Rhs::any_of(ranges.iter().map(|r| {
        if r.min == r.max {
            Value::port(r.min)
        } else {
            Value::ports(r.min, r.max)
        }
    }))
}

fn is_point(rhs: &Rhs) -> bool {
    matches!(rhs, Rhs::One(Value::Int(_)))
}

/// A point written as a one-point range, which nft keeps apart from its
/// neighbour field.
fn as_range(rhs: Rhs) -> Rhs {
    match rhs {
        Rhs::One(Value::Int(n)) => Rhs::One(Value::Range(n, n)),
        other => other,
    }
}

/// Source or destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Src,
    Dst,
}

impl End {
    fn addr(self, fam: Fam) -> Key {
        match self {
            End::Src => Key::Saddr(fam.ip()),
            End::Dst => Key::Daddr(fam.ip()),
        }
    }

    fn port(self, key: PortKey) -> Key {
        match self {
            End::Src => Key::Sport(key.proto()),
            End::Dst => Key::Dport(key.proto()),
        }
    }

    fn named_port(self, fam: Fam, key: PortKey) -> Key {
        Key::Concat(vec![self.addr(fam), Key::L4Proto, self.port(key)])
    }
}

/// One alternative: the statements it adds.
type Alternative = Vec<Statement>;

impl<'a> RuleWriter<'a> {
    pub fn new(dp: &'a Dataplane, fam: Fam, marks: Marks, log_prefix: &str) -> RuleWriter<'a> {
        RuleWriter {
            dp,
            fam,
            marks,
            log_prefix: format!("{log_prefix}: "),
            sets_used: BTreeMap::new(),
            sets_read: BTreeSet::new(),
        }
    }

    fn use_set(&mut self, id: &IpSetId, usage: SetUse) -> String {
        self.sets_used.insert(id.clone(), usage);
        self.sets_read.insert(id.clone());
        names::ip_set(id, self.fam.v6)
    }

    /// The nets of a `Nets` set in this family, or `None` if the set is
    /// unknown.
    fn nets(&mut self, id: &IpSetId) -> Option<Vec<IpNet>> {
        self.sets_read.insert(id.clone());
        let set = self.dp.ip_sets.get(id)?;
        Some(disjoint_nets(set.members.iter().filter_map(|m| match m {
            IpSetMember::Net(n) if self.fam.holds(n) => Some(*n),
            _ => None,
        })))
    }

    /// The operand for a nets criterion: inline when short, else a named set.
    fn nets_operand(&mut self, id: &IpSetId, nets: &[IpNet]) -> Rhs {
        if nets.len() <= MAX_INLINE_NETS {
            Rhs::any_of(nets.iter().map(|n| Value::net(*n)))
        } else {
            Rhs::set(self.use_set(id, SetUse::Addresses))
        }
    }

    /// Address criteria of one side; `None` if they can never hold.
    fn address_matches(&mut self, side: &MatchSide, end: End) -> Option<Vec<Statement>> {
        let key = end.addr(self.fam);
        let mut out = Vec::new();
        if let Some(id) = &side.nets {
            let nets = self.nets(id)?;
            if nets.is_empty() {
                return None;
            }
            let rhs = self.nets_operand(id, &nets);
            out.push(Statement::Match(Match::eq(key.clone(), rhs)));
        }
        if let Some(id) = &side.not_nets {
            if let Some(nets) = self.nets(id).filter(|n| !n.is_empty()) {
                let rhs = self.nets_operand(id, &nets);
                out.push(Statement::Match(Match::ne(key.clone(), rhs)));
            }
        }
        for id in &side.ip_sets {
            let set = self.use_set(id, SetUse::Addresses);
            out.push(Statement::Match(Match::eq(key.clone(), Rhs::set(set))));
        }
        for id in &side.not_ip_sets {
            let set = self.use_set(id, SetUse::Addresses);
            out.push(Statement::Match(Match::ne(key.clone(), Rhs::set(set))));
        }
        Some(out)
    }

    /// The negated port criteria of one side (a conjunction).
    fn negated_ports(&mut self, side: &MatchSide, end: End, key: PortKey) -> Vec<Statement> {
        let mut out = Vec::new();
        if !side.not_ports.is_empty() {
            out.push(Statement::Match(Match::ne(
                end.port(key),
                port_values(&side.not_ports),
            )));
        }
        for id in &side.not_named_ports {
            let set = self.use_set(id, SetUse::NamedPorts);
            out.push(Statement::Match(Match::ne(
                end.named_port(self.fam, key),
                Rhs::set(set),
            )));
        }
        out
    }

    /// The positive port criteria of one side: alternatives, or `None` when
    /// the side has none.
    fn port_alternatives(
        &mut self,
        side: &MatchSide,
        end: End,
        key: PortKey,
    ) -> Option<Vec<Alternative>> {
        if side.ports.is_empty() && side.named_ports.is_empty() {
            return None;
        }
        let mut alts = Vec::new();
        if !side.ports.is_empty() {
            alts.push(vec![Statement::Match(Match::eq(
                end.port(key),
                port_values(&side.ports),
            ))]);
        }
        for id in &side.named_ports {
            let set = self.use_set(id, SetUse::NamedPorts);
            alts.push(vec![Statement::Match(Match::eq(
                end.named_port(self.fam, key),
                Rhs::set(set),
            ))]);
        }
        Some(alts)
    }

    /// The ICMP criteria: the positive test (a conjunction) and the negated
    /// one's alternatives; `None` if they can never hold together.
    fn icmp(&self, rule: &RuleProgram) -> Option<(Vec<Statement>, Option<Vec<Alternative>>)> {
        let ty = Key::IcmpType(self.fam.ip());
        let code = Key::IcmpCode(self.fam.ip());
        let int = |n: u8| Value::Int(n.into());
        let mut positive = Vec::new();
        if let Some(IcmpMatch { icmp_type, code: c }) = rule.icmp {
            positive.push(Statement::Match(Match::eq(ty.clone(), int(icmp_type))));
            if let Some(c) = c {
                positive.push(Statement::Match(Match::eq(code.clone(), int(c))));
            }
        }
        let Some(not) = rule.not_icmp else {
            return Some((positive, None));
        };
        match rule.icmp {
            // The packet is ICMP of a known type (and maybe code): the
            // negation is decided by comparing the two criteria.
            Some(pos) if pos.icmp_type != not.icmp_type => Some((positive, None)),
            Some(pos) => match (pos.code, not.code) {
                (_, None) => None,
                (Some(a), Some(b)) if a == b => None,
                (Some(_), Some(_)) => Some((positive, None)),
                (None, Some(b)) => {
                    positive.push(Statement::Match(Match::ne(code, int(b))));
                    Some((positive, None))
                }
            },
            // Not ICMP at all; or ICMP of another type; or of that type
            // with another code.
            None => {
                let mut alts = vec![
                    vec![Statement::Match(Match::ne(
                        Key::L4Proto,
                        Value::Int(self.fam.icmp_protocol().into()),
                    ))],
                    vec![Statement::Match(Match::ne(ty.clone(), int(not.icmp_type)))],
                ];
                if let Some(c) = not.code {
                    alts.push(vec![
                        Statement::Match(Match::eq(ty, int(not.icmp_type))),
                        Statement::Match(Match::ne(code, int(c))),
                    ]);
                }
                Some((positive, Some(alts)))
            }
        }
    }

    /// The nft rules for `rule`, in this writer's family. Empty if the rule
    /// does not exist in the family or can never match.
    pub fn rule(&mut self, rule: &RuleProgram) -> Vec<Rule> {
        let v = if self.fam.v6 {
            rule.ip_versions.v6
        } else {
            rule.ip_versions.v4
        };
        if !v {
            return Vec::new();
        }
        let has_ports = |s: &MatchSide| {
            !(s.ports.is_empty()
                && s.named_ports.is_empty()
                && s.not_ports.is_empty()
                && s.not_named_ports.is_empty())
        };
        let port_criteria = has_ports(&rule.src) || has_ports(&rule.dst);
        let mut base: Vec<Statement> = Vec::new();
        let key = match rule.protocol {
            Some(6) => PortKey::Named(PortProto::Tcp),
            Some(17) => PortKey::Named(PortProto::Udp),
            Some(132) => PortKey::Named(PortProto::Sctp),
            Some(p) if port_criteria && !PORT_PROTOCOLS.contains(&p) => return Vec::new(),
            Some(_) => PortKey::Th,
            None => {
                if port_criteria {
                    base.push(Statement::Match(Match::eq(
                        Key::L4Proto,
                        Rhs::any_of(PORT_PROTOCOLS.iter().map(|p| Value::Int((*p).into()))),
                    )));
                }
                PortKey::Th
            }
        };

        let Some(src) = self.address_matches(&rule.src, End::Src) else {
            return Vec::new();
        };
        let Some(dst) = self.address_matches(&rule.dst, End::Dst) else {
            return Vec::new();
        };
        base.extend(src);
        base.extend(dst);

        let mut not_src = self.negated_ports(&rule.src, End::Src, key);
        let not_dst = self.negated_ports(&rule.dst, End::Dst, key);
        // Two negated one-port tests on adjacent fields would be merged.
        let negated_point = |s: &[Statement]| {
            s.iter()
                .any(|st| matches!(st, Statement::Match(m) if !matches!(m.key, Key::Concat(_)) && is_point(&m.rhs)))
        };
        if negated_point(&not_src) && negated_point(&not_dst) {
            for st in &mut not_src {
                if let Statement::Match(m) = st {
                    if !matches!(m.key, Key::Concat(_)) {
                        m.rhs = as_range(m.rhs.clone());
                    }
                }
            }
        }
        base.extend(not_src);
        base.extend(not_dst);

        // An ICMP test needs an ICMP packet of this family, so another
        // protocol can never match with it.
        if rule.icmp.is_some() && rule.protocol.is_some_and(|p| p != self.fam.icmp_protocol()) {
            return Vec::new();
        }
        let Some((icmp, not_icmp)) = self.icmp(rule) else {
            return Vec::new();
        };
        base.extend(icmp);

        let mut factors: Vec<Vec<Alternative>> = Vec::new();
        let src_alts = self.port_alternatives(&rule.src, End::Src, key);
        let mut dst_alts = self.port_alternatives(&rule.dst, End::Dst, key);
        if key == PortKey::Th {
            // `th sport N th dport M` is merged into a raw match nft cannot
            // list back; keep the destination a range.
            let src_point = src_alts
                .iter()
                .flatten()
                .flatten()
                .any(|st| matches!(st, Statement::Match(m) if is_point(&m.rhs)));
            if src_point {
                for alt in dst_alts.iter_mut().flatten() {
                    for st in alt.iter_mut() {
                        if let Statement::Match(m) = st {
                            m.rhs = as_range(m.rhs.clone());
                        }
                    }
                }
            }
        }
        factors.extend(src_alts);
        factors.extend(dst_alts);
        factors.extend(not_icmp);

        let mut combos: Vec<Vec<Statement>> = vec![base];
        for factor in factors {
            combos = combos
                .iter()
                .flat_map(|c| {
                    factor.iter().map(move |alt| {
                        let mut c = c.clone();
                        c.extend(alt.iter().cloned());
                        c
                    })
                })
                .collect();
        }
        for combo in &mut combos {
            self.protocol_tests(rule, combo);
        }
        self.with_action(rule.action, combos)
    }

    /// Appends the protocol tests, last (see the module docs), unless a
    /// test already in the rule implies the protocol.
    fn protocol_tests(&self, rule: &RuleProgram, statements: &mut Vec<Statement>) {
        if let Some(p) = rule.protocol {
            let implied = statements.iter().any(|st| match st {
                Statement::Match(m) => key_implies(&m.key, p, self.fam),
                _ => false,
            });
            if !implied {
                statements.push(Statement::Match(Match::eq(
                    Key::L4Proto,
                    Value::Int(p.into()),
                )));
            }
        }
        if let Some(p) = rule.not_protocol {
            statements.push(Statement::Match(Match::ne(
                Key::L4Proto,
                Value::Int(p.into()),
            )));
        }
    }

    fn with_action(&self, action: RuleAction, combos: Vec<Vec<Statement>>) -> Vec<Rule> {
        let marks = self.marks;
        let finish = |statements: Vec<Statement>| {
            let rule = Rule {
                statements,
                comment: None,
            };
            match action {
                RuleAction::Allow => rule.set_mark(marks.accept, marks.accept).ret(),
                RuleAction::Pass => rule.set_mark(marks.pass, marks.pass).ret(),
                RuleAction::Deny => rule.drop(),
                RuleAction::Log => rule.log(self.log_prefix.clone()),
            }
        };
        if action != RuleAction::Log || combos.len() <= 1 {
            return combos.into_iter().map(finish).collect();
        }
        let mut out: Vec<Rule> = combos
            .into_iter()
            .map(|statements| {
                Rule {
                    statements,
                    comment: None,
                }
                .set_mark(marks.scratch, marks.scratch)
            })
            .collect();
        out.push(
            Rule::new()
                .matching(
                    Key::Mark {
                        mask: marks.scratch,
                    },
                    Value::Int(marks.scratch),
                )
                .log(self.log_prefix.clone())
                .set_mark(marks.scratch, 0),
        );
        out
    }
}

/// Whether testing `key` already restricts the packet to protocol `p`.
fn key_implies(key: &Key, p: u8, fam: Fam) -> bool {
    let named = |proto: &PortProto| {
        matches!(
            (proto, p),
            (PortProto::Tcp, 6) | (PortProto::Udp, 17) | (PortProto::Sctp, 132)
        )
    };
    match key {
        Key::Sport(proto) | Key::Dport(proto) => named(proto),
        Key::IcmpType(_) | Key::IcmpCode(_) => p == fam.icmp_protocol(),
        Key::Concat(parts) => parts.iter().any(|k| key_implies(k, p, fam)),
        _ => false,
    }
}

/// Every set a ruleset needs, with its members in the family.
pub fn set_members(dp: &Dataplane, fam: Fam, id: &IpSetId, usage: SetUse) -> BTreeSet<Value> {
    let Some(set) = dp.ip_sets.get(id) else {
        return BTreeSet::new();
    };
    match usage {
        SetUse::Addresses => disjoint_nets(set.members.iter().filter_map(|m| match m {
            IpSetMember::Net(n) if fam.holds(n) => Some(*n),
            _ => None,
        }))
        .into_iter()
        .map(Value::net)
        .collect(),
        SetUse::NamedPorts => set
            .members
            .iter()
            .filter_map(|m| match m {
                IpSetMember::IpPort {
                    addr,
                    protocol,
                    port,
                } if addr.is_ipv6() == fam.v6 => Some(Value::Concat(vec![
                    Value::addr(*addr),
                    Value::Int((*protocol).into()),
                    Value::port(*port),
                ])),
                _ => None,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_policy::program::{IpSet, IpSetKind, IpVersions, NamedPortProtocol};

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn rule(action: RuleAction) -> RuleProgram {
        RuleProgram {
            action,
            ip_versions: IpVersions { v4: true, v6: true },
            protocol: None,
            not_protocol: None,
            icmp: None,
            not_icmp: None,
            src: MatchSide::default(),
            dst: MatchSide::default(),
        }
    }

    fn dataplane() -> Dataplane {
        let mut dp = Dataplane::default();
        dp.ip_sets.insert(
            IpSetId("nets:a".into()),
            IpSet {
                kind: IpSetKind::Nets,
                members: [
                    IpSetMember::Net(net("10.0.0.0/8")),
                    IpSetMember::Net(net("10.1.0.0/16")),
                    IpSetMember::Net(net("fd00::/8")),
                ]
                .into(),
            },
        );
        dp.ip_sets.insert(
            IpSetId("n:web".into()),
            IpSet {
                kind: IpSetKind::NamedPort {
                    selector: "all()".into(),
                    protocol: NamedPortProtocol::Tcp,
                    port_name: "http".into(),
                },
                members: [IpSetMember::IpPort {
                    addr: "10.0.0.1".parse().unwrap(),
                    protocol: 6,
                    port: 8080,
                }]
                .into(),
            },
        );
        dp
    }

    fn render(dp: &Dataplane, v6: bool, r: &RuleProgram) -> Vec<String> {
        let mut w = RuleWriter::new(dp, Fam { v6 }, Marks::default(), "calico-packet");
        w.rule(r).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn rules_table() {
        let dp = dataplane();
        let mut cases: Vec<(RuleProgram, bool, Vec<&str>)> = vec![
            (
                rule(RuleAction::Allow),
                false,
                vec!["meta mark set meta mark | 0x00010000 return"],
            ),
            (rule(RuleAction::Deny), false, vec!["drop"]),
            (
                rule(RuleAction::Pass),
                false,
                vec!["meta mark set meta mark | 0x00020000 return"],
            ),
            (
                rule(RuleAction::Log),
                false,
                vec![r#"log prefix "calico-packet: ""#],
            ),
        ];

        let mut r = rule(RuleAction::Deny);
        r.protocol = Some(6);
        r.dst.ports = vec![
            PortRange { min: 80, max: 80 },
            PortRange {
                min: 8000,
                max: 8080,
            },
        ];
        r.src.nets = Some(IpSetId("nets:a".into()));
        cases.push((
            r.clone(),
            false,
            vec!["ip saddr 10.0.0.0/8 tcp dport { 80, 8000-8080 } drop"],
        ));
        cases.push((
            r,
            true,
            vec!["ip6 saddr fd00::/8 tcp dport { 80, 8000-8080 } drop"],
        ));

        let mut r = rule(RuleAction::Allow);
        r.ip_versions.v6 = false;
        cases.push((r, true, vec![]));

        // Protocol without ports: tested last.
        let mut r = rule(RuleAction::Deny);
        r.protocol = Some(17);
        r.not_protocol = None;
        r.dst.ip_sets = vec![IpSetId("s:x".into())];
        cases.push((r, false, vec!["ip daddr @cali40s-x meta l4proto 17 drop"]));

        // Ports or named ports: two rules.
        let mut r = rule(RuleAction::Allow);
        r.protocol = Some(6);
        r.dst.ports = vec![PortRange { min: 443, max: 443 }];
        r.dst.named_ports = vec![IpSetId("n:web".into())];
        cases.push((
            r.clone(),
            false,
            vec![
                "tcp dport 443 meta mark set meta mark | 0x00010000 return",
                "ip daddr . meta l4proto . tcp dport @cali40n-web meta mark set meta mark | 0x00010000 return",
            ],
        ));
        // The same as a Log rule: logged once.
        r.action = RuleAction::Log;
        cases.push((
            r,
            false,
            vec![
                "tcp dport 443 meta mark set meta mark | 0x00080000",
                "ip daddr . meta l4proto . tcp dport @cali40n-web meta mark set meta mark | 0x00080000",
                r#"meta mark & 0x00080000 == 0x00080000 log prefix "calico-packet: " meta mark set meta mark & 0xfff7ffff"#,
            ],
        ));

        // Ports with no protocol: only port-carrying protocols.
        let mut r = rule(RuleAction::Deny);
        r.dst.not_ports = vec![PortRange { min: 22, max: 22 }];
        cases.push((
            r,
            false,
            vec!["meta l4proto { 6, 17, 33, 132, 136 } th dport != 22 drop"],
        ));

        // Ports with ICMP: never matches.
        let mut r = rule(RuleAction::Deny);
        r.protocol = Some(1);
        r.dst.ports = vec![PortRange { min: 22, max: 22 }];
        cases.push((r, false, vec![]));

        // Negated one-port tests on both sides stay apart.
        let mut r = rule(RuleAction::Deny);
        r.protocol = Some(17);
        r.src.not_ports = vec![PortRange { min: 53, max: 53 }];
        r.dst.not_ports = vec![PortRange { min: 54, max: 54 }];
        cases.push((r, false, vec!["udp sport != 53-53 udp dport != 54 drop"]));

        // th sport N th dport M: the destination as a range.
        let mut r = rule(RuleAction::Deny);
        r.protocol = Some(136);
        r.src.ports = vec![PortRange { min: 1, max: 1 }];
        r.dst.ports = vec![PortRange { min: 2, max: 2 }];
        cases.push((
            r,
            false,
            vec!["th sport 1 th dport 2-2 meta l4proto 136 drop"],
        ));

        // ICMP and its negation.
        let mut r = rule(RuleAction::Allow);
        r.protocol = Some(1);
        r.icmp = Some(IcmpMatch {
            icmp_type: 8,
            code: Some(0),
        });
        cases.push((
            r,
            false,
            vec!["icmp type 8 icmp code 0 meta mark set meta mark | 0x00010000 return"],
        ));
        let mut r = rule(RuleAction::Deny);
        r.not_icmp = Some(IcmpMatch {
            icmp_type: 128,
            code: Some(0),
        });
        cases.push((
            r,
            true,
            vec![
                "meta l4proto != 58 drop",
                "icmpv6 type != 128 drop",
                "icmpv6 type 128 icmpv6 code != 0 drop",
            ],
        ));
        let mut r = rule(RuleAction::Deny);
        r.icmp = Some(IcmpMatch {
            icmp_type: 8,
            code: None,
        });
        r.not_icmp = Some(IcmpMatch {
            icmp_type: 8,
            code: None,
        });
        cases.push((r, false, vec![]));

        // Unknown nets set: the rule can never match.
        let mut r = rule(RuleAction::Deny);
        r.src.nets = Some(IpSetId("nets:missing".into()));
        cases.push((r, false, vec![]));

        for (i, (r, v6, want)) in cases.iter().enumerate() {
            assert_eq!(render(&dp, *v6, r), *want, "case {i}: {r:?}");
        }
    }

    #[test]
    fn long_nets_lists_become_sets() {
        let mut dp = Dataplane::default();
        let id = IpSetId("nets:big".into());
        dp.ip_sets.insert(
            id.clone(),
            IpSet {
                kind: IpSetKind::Nets,
                members: (0..20u8)
                    .map(|i| IpSetMember::Net(net(&format!("10.{i}.0.0/16"))))
                    .collect(),
            },
        );
        let mut r = rule(RuleAction::Deny);
        r.src.not_nets = Some(id.clone());
        let mut w = RuleWriter::new(&dp, Fam { v6: false }, Marks::default(), "x");
        let rules = w.rule(&r);
        assert_eq!(rules[0].to_string(), "ip saddr != @cali40nets-big drop");
        assert_eq!(w.sets_used.get(&id), Some(&SetUse::Addresses));
        assert_eq!(
            set_members(&dp, Fam { v6: false }, &id, SetUse::Addresses).len(),
            20
        );
    }

    #[test]
    fn nested_nets_are_dropped() {
        let got = disjoint_nets([
            net("10.1.2.3/32"),
            net("10.0.0.0/8"),
            net("10.1.0.0/16"),
            net("11.0.0.0/8"),
            net("9.255.255.255/32"),
        ]);
        assert_eq!(
            got,
            vec![
                net("9.255.255.255/32"),
                net("10.0.0.0/8"),
                net("11.0.0.0/8")
            ]
        );
    }
}
