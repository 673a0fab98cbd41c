//! Judging packets: the vocabulary of verdicts and trails shared by the
//! reference evaluator ([`crate::explain`]) and the program evaluator here,
//! which runs a [`Dataplane`] exactly as the [program docs](crate::program)
//! describe. The two are written independently so that tests can compare
//! them; a dataplane generator can be tested against either.

use std::fmt;
use std::net::IpAddr;

use crate::ids::{EndpointKey, IpSetId, PolicyKey};
use crate::program::{
    Dataplane, Direction, IcmpMatch, IpSetMember, MatchSide, ProtoPort, RuleAction, RuleProgram,
    TierAction, TierProgram,
};

/// The packet being judged. Ports are present for TCP, UDP and SCTP; ICMP
/// type and code for ICMP and ICMPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub icmp: Option<IcmpHeader>,
}

/// An ICMP packet's type and code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IcmpHeader {
    pub icmp_type: u8,
    pub code: u8,
}

impl Packet {
    pub fn tcp(src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16) -> Self {
        Packet::with_ports(6, src, src_port, dst, dst_port)
    }

    pub fn udp(src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16) -> Self {
        Packet::with_ports(17, src, src_port, dst, dst_port)
    }

    /// A packet of a port-carrying protocol (TCP, UDP, SCTP).
    pub fn with_ports(
        protocol: u8,
        src: IpAddr,
        src_port: u16,
        dst: IpAddr,
        dst_port: u16,
    ) -> Self {
        Packet {
            src,
            dst,
            protocol,
            src_port: Some(src_port),
            dst_port: Some(dst_port),
            icmp: None,
        }
    }

    /// An ICMP (or, between IPv6 addresses, ICMPv6) packet.
    pub fn icmp(src: IpAddr, dst: IpAddr, icmp_type: u8, code: u8) -> Self {
        Packet {
            src,
            dst,
            protocol: if src.is_ipv6() { 58 } else { 1 },
            src_port: None,
            dst_port: None,
            icmp: Some(IcmpHeader { icmp_type, code }),
        }
    }
}

/// Whether an ICMP criterion holds for the packet.
pub(crate) fn icmp_matches(m: &IcmpMatch, packet: &Packet) -> bool {
    packet
        .icmp
        .is_some_and(|h| h.icmp_type == m.icmp_type && m.code.is_none_or(|c| c == h.code))
}

/// Allowed or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Allow,
    Deny,
}

/// Which chain of a host endpoint decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// doNotTrack policy.
    Untracked,
    /// preDNAT policy.
    PreDnat,
    /// Normal policy.
    Normal,
}

/// What decided one side of a flow.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Decision {
    /// The address is not a (local) endpoint: no policy on this side.
    NoEndpoint,
    /// A host endpoint's failsafe port.
    Failsafe(ProtoPort),
    /// An Allow or Deny rule of a policy.
    Rule {
        stage: Stage,
        tier: String,
        policy: PolicyKey,
        index: usize,
        action: RuleAction,
    },
    /// A tier whose policies did not decide, with default action Deny.
    EndOfTier { tier: String },
    /// An Allow or Deny rule of a profile.
    Profile {
        profile: String,
        index: usize,
        action: RuleAction,
    },
    /// The endpoint names a profile that does not exist (deny, as Calico).
    MissingProfile { profile: String },
    /// Nothing decided: no policy and no profile allowed the packet.
    NoProfileMatched,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::NoEndpoint => write!(f, "not an endpoint: no policy applies"),
            Decision::Failsafe(p) => write!(f, "failsafe port {}/{}", p.protocol, p.port),
            Decision::Rule {
                stage,
                tier,
                policy,
                index,
                action,
            } => write!(
                f,
                "tier {tier}, {policy}, rule {index} ({action:?}, {stage:?})"
            ),
            Decision::EndOfTier { tier } => {
                write!(f, "end of tier {tier}: no policy decided (default Deny)")
            }
            Decision::Profile {
                profile,
                index,
                action,
            } => write!(f, "profile {profile}, rule {index} ({action:?})"),
            Decision::MissingProfile { profile } => {
                write!(f, "profile {profile} does not exist (deny)")
            }
            Decision::NoProfileMatched => {
                write!(f, "no policy or profile allowed the packet (default deny)")
            }
        }
    }
}

/// Something that happened on the way to a decision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    /// A Log rule matched.
    Log {
        stage: Stage,
        tier: Option<String>,
        owner: String,
        index: usize,
    },
    /// A Pass rule matched: on to the next tier (or profile).
    Pass {
        stage: Stage,
        tier: Option<String>,
        owner: String,
        index: usize,
    },
    /// No policy in the tier decided and its default action is Pass.
    TierPassed { stage: Stage, tier: String },
}

/// The judgement of one endpoint on one packet in one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideVerdict {
    pub verdict: Verdict,
    pub decided_by: Decision,
    pub trail: Vec<Step>,
}

/// A packet and the endpoints it leaves and reaches (`None`: a bare
/// address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub src_endpoint: Option<EndpointKey>,
    pub dst_endpoint: Option<EndpointKey>,
    pub packet: Packet,
}

/// The verdict on a flow: the source's egress and the destination's
/// ingress must both allow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub verdict: Verdict,
    pub egress: SideVerdict,
    pub ingress: SideVerdict,
}

impl Explanation {
    pub(crate) fn new(egress: SideVerdict, ingress: SideVerdict) -> Self {
        let verdict = if egress.verdict == Verdict::Allow && ingress.verdict == Verdict::Allow {
            Verdict::Allow
        } else {
            Verdict::Deny
        };
        Explanation {
            verdict,
            egress,
            ingress,
        }
    }
}

pub(crate) fn no_endpoint() -> SideVerdict {
    SideVerdict {
        verdict: Verdict::Allow,
        decided_by: Decision::NoEndpoint,
        trail: Vec::new(),
    }
}

/// The failsafe entry admitting the packet, for a host endpoint.
pub(crate) fn failsafe_match(
    list: &[ProtoPort],
    packet: &Packet,
    direction: Direction,
) -> Option<ProtoPort> {
    let remote = match direction {
        Direction::Ingress => packet.src,
        Direction::Egress => packet.dst,
    };
    list.iter().copied().find(|p| {
        p.protocol == packet.protocol
            && packet.dst_port == Some(p.port)
            && p.net.is_none_or(|n| n.contains(&remote))
    })
}

// ----- the program evaluator -----

/// Runs both sides of a flow through a [`Dataplane`].
pub fn evaluate_flow(dp: &Dataplane, flow: &Flow) -> Explanation {
    let side = |ep: &Option<EndpointKey>, d| match ep {
        Some(ep) => evaluate_program(dp, ep, d, &flow.packet),
        None => no_endpoint(),
    };
    Explanation::new(
        side(&flow.src_endpoint, Direction::Egress),
        side(&flow.dst_endpoint, Direction::Ingress),
    )
}

/// Judges a packet in one direction of one endpoint's program.
pub fn evaluate_program(
    dp: &Dataplane,
    endpoint: &EndpointKey,
    direction: Direction,
    packet: &Packet,
) -> SideVerdict {
    let Some(ep) = dp.endpoints.get(endpoint) else {
        return no_endpoint();
    };
    let mut trail = Vec::new();
    let done = |verdict, decided_by, trail| SideVerdict {
        verdict,
        decided_by,
        trail,
    };
    if endpoint.is_host() {
        let list = match direction {
            Direction::Ingress => &dp.failsafe.inbound,
            Direction::Egress => &dp.failsafe.outbound,
        };
        if let Some(p) = failsafe_match(list, packet, direction) {
            return done(Verdict::Allow, Decision::Failsafe(p), trail);
        }
        let mut stages = vec![(Stage::Untracked, ep.untracked.direction(direction))];
        if direction == Direction::Ingress {
            stages.push((Stage::PreDnat, ep.pre_dnat.direction(direction)));
        }
        for (stage, tiers) in stages {
            if let Some((v, d)) = run_tiers(dp, tiers, stage, direction, packet, &mut trail) {
                return done(v, d, trail);
            }
        }
    }
    if let Some((v, d)) = run_tiers(
        dp,
        ep.normal.direction(direction),
        Stage::Normal,
        direction,
        packet,
        &mut trail,
    ) {
        return done(v, d, trail);
    }
    for name in &ep.profiles {
        let Some(profile) = dp.profiles.get(name) else {
            continue;
        };
        if profile.missing {
            return done(
                Verdict::Deny,
                Decision::MissingProfile {
                    profile: name.clone(),
                },
                trail,
            );
        }
        for (index, rule) in profile.rules(direction).iter().enumerate() {
            if !rule_matches(dp, rule, packet) {
                continue;
            }
            match rule.action {
                RuleAction::Allow | RuleAction::Deny => {
                    let verdict = if rule.action == RuleAction::Allow {
                        Verdict::Allow
                    } else {
                        Verdict::Deny
                    };
                    let decision = Decision::Profile {
                        profile: name.clone(),
                        index,
                        action: rule.action,
                    };
                    return done(verdict, decision, trail);
                }
                RuleAction::Log => trail.push(Step::Log {
                    stage: Stage::Normal,
                    tier: None,
                    owner: name.clone(),
                    index,
                }),
                RuleAction::Pass => {
                    trail.push(Step::Pass {
                        stage: Stage::Normal,
                        tier: None,
                        owner: name.clone(),
                        index,
                    });
                    break;
                }
            }
        }
    }
    done(Verdict::Deny, Decision::NoProfileMatched, trail)
}

fn run_tiers(
    dp: &Dataplane,
    tiers: &[TierProgram],
    stage: Stage,
    direction: Direction,
    packet: &Packet,
    trail: &mut Vec<Step>,
) -> Option<(Verdict, Decision)> {
    'tiers: for tier in tiers {
        for key in &tier.policies {
            let Some(policy) = dp.policies.get(key) else {
                continue;
            };
            for (index, rule) in policy.rules(direction).iter().enumerate() {
                if !rule_matches(dp, rule, packet) {
                    continue;
                }
                match rule.action {
                    RuleAction::Allow | RuleAction::Deny => {
                        let verdict = if rule.action == RuleAction::Allow {
                            Verdict::Allow
                        } else {
                            Verdict::Deny
                        };
                        return Some((
                            verdict,
                            Decision::Rule {
                                stage,
                                tier: tier.name.clone(),
                                policy: key.clone(),
                                index,
                                action: rule.action,
                            },
                        ));
                    }
                    RuleAction::Log => trail.push(Step::Log {
                        stage,
                        tier: Some(tier.name.clone()),
                        owner: key.to_string(),
                        index,
                    }),
                    RuleAction::Pass => {
                        trail.push(Step::Pass {
                            stage,
                            tier: Some(tier.name.clone()),
                            owner: key.to_string(),
                            index,
                        });
                        continue 'tiers;
                    }
                }
            }
        }
        match tier.default_action {
            TierAction::Deny => {
                return Some((
                    Verdict::Deny,
                    Decision::EndOfTier {
                        tier: tier.name.clone(),
                    },
                ));
            }
            TierAction::Pass => trail.push(Step::TierPassed {
                stage,
                tier: tier.name.clone(),
            }),
        }
    }
    None
}

fn set_contains_addr(dp: &Dataplane, id: &IpSetId, addr: IpAddr) -> bool {
    dp.ip_sets.get(id).is_some_and(|s| {
        s.members
            .iter()
            .any(|m| matches!(m, IpSetMember::Net(n) if n.contains(&addr)))
    })
}

fn set_contains_port(dp: &Dataplane, id: &IpSetId, addr: IpAddr, protocol: u8, port: u16) -> bool {
    dp.ip_sets.get(id).is_some_and(|s| {
        s.members.contains(&IpSetMember::IpPort {
            addr,
            protocol,
            port,
        })
    })
}

fn side_matches(
    dp: &Dataplane,
    side: &MatchSide,
    addr: IpAddr,
    port: Option<u16>,
    protocol: u8,
) -> bool {
    if side
        .nets
        .as_ref()
        .is_some_and(|id| !set_contains_addr(dp, id, addr))
    {
        return false;
    }
    if side
        .not_nets
        .as_ref()
        .is_some_and(|id| set_contains_addr(dp, id, addr))
    {
        return false;
    }
    if !side
        .ip_sets
        .iter()
        .all(|id| set_contains_addr(dp, id, addr))
    {
        return false;
    }
    if side
        .not_ip_sets
        .iter()
        .any(|id| set_contains_addr(dp, id, addr))
    {
        return false;
    }
    let in_ports = |ranges: &[crate::program::PortRange], named: &[IpSetId], p: u16| {
        ranges.iter().any(|r| r.contains(p))
            || named
                .iter()
                .any(|id| set_contains_port(dp, id, addr, protocol, p))
    };
    if !side.ports.is_empty() || !side.named_ports.is_empty() {
        match port {
            Some(p) if in_ports(&side.ports, &side.named_ports, p) => {}
            _ => return false,
        }
    }
    if !side.not_ports.is_empty() || !side.not_named_ports.is_empty() {
        match port {
            Some(p) if !in_ports(&side.not_ports, &side.not_named_ports, p) => {}
            _ => return false,
        }
    }
    true
}

/// Whether a compiled rule matches the packet.
pub fn rule_matches(dp: &Dataplane, rule: &RuleProgram, packet: &Packet) -> bool {
    rule.ip_versions.contains(packet.src)
        && rule.protocol.is_none_or(|p| p == packet.protocol)
        && rule.not_protocol.is_none_or(|p| p != packet.protocol)
        && rule.icmp.as_ref().is_none_or(|m| icmp_matches(m, packet))
        && rule
            .not_icmp
            .as_ref()
            .is_none_or(|m| !icmp_matches(m, packet))
        && side_matches(dp, &rule.src, packet.src, packet.src_port, packet.protocol)
        && side_matches(dp, &rule.dst, packet.dst, packet.dst_port, packet.protocol)
}
