//! The engine's output: a dataplane-neutral description of what to enforce.
//!
//! A [`Dataplane`] holds
//! - one [`EndpointProgram`] per (local) endpoint: for each direction, the
//!   ordered tiers that apply, each naming its policies in order, then the
//!   endpoint's profiles;
//! - one [`PolicyProgram`] per policy some endpoint uses, and one
//!   [`ProfileProgram`] per profile: their rules, in order;
//! - every [`IpSet`] a rule refers to, with its members.
//!
//! Endpoints name policies by key rather than embedding them, so a policy
//! used by a thousand endpoints is rendered once (as Calico renders one chain
//! per policy) and a change to its rules touches one program.
//!
//! # How a packet is judged (for one endpoint and direction)
//!
//! 1. Host endpoints only: if a failsafe port matches, allow.
//! 2. For each tier in order: run its policies in order; in each policy, the
//!    first rule that matches decides: `Allow` and `Deny` end evaluation,
//!    `Pass` skips the rest of the tier, `Log` records and goes on to the
//!    next rule. If no rule of any policy in the tier decided, the tier's
//!    default action applies: `Deny` ends evaluation, `Pass` goes on to the
//!    next tier.
//! 3. If evaluation falls off the last tier (or no tier applies), each
//!    profile is tried in turn the same way (a `Pass` moves to the next
//!    profile); if none decides, deny.
//!
//! Host endpoints also carry `untracked` (doNotTrack) and `pre_dnat` chains,
//! run before the normal chain with every tier's default action `Pass`,
//! and `forward` chains (applyOnForward policy) for forwarded traffic, which
//! is allowed when no forward tier applies. [`crate::eval`] implements these
//! semantics as executable reference.
//!
//! # How a rule matches
//!
//! Every present criterion must hold: IP family ([`RuleProgram::ip_versions`]),
//! protocol, ICMP type/code, and for each side ([`MatchSide`]) the nets, the
//! selector IP sets, and the ports. A side's `ports` and `named_ports` are
//! alternatives: the packet's port must be in one of the ranges *or* its
//! (address, protocol, port) must be in one of the named-port sets.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

pub use crate::ids::{EndpointKey, IpSetId, PolicyKey};

/// Everything a dataplane needs, keyed deterministically.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataplane {
    pub endpoints: BTreeMap<EndpointKey, EndpointProgram>,
    pub policies: BTreeMap<PolicyKey, PolicyProgram>,
    pub profiles: BTreeMap<String, ProfileProgram>,
    pub ip_sets: BTreeMap<IpSetId, IpSet>,
    /// Ports always open on host endpoints (what Calico calls failsafe
    /// ports).
    pub failsafe: Failsafe,
}

/// What to enforce on one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointProgram {
    pub key: EndpointKey,
    /// The host-side interface (`cali…` for workloads; `*` for a host
    /// endpoint covering all host interfaces).
    pub interface_name: String,
    /// The endpoint's own addresses.
    pub addresses: Vec<IpNet>,
    /// Normal (connection-tracked, filter) policy.
    pub normal: Chains,
    /// Host endpoints: doNotTrack policy (every tier's default is Pass).
    pub untracked: Chains,
    /// Host endpoints: preDNAT policy, ingress only (defaults Pass).
    pub pre_dnat: Chains,
    /// Host endpoints: applyOnForward policy for forwarded traffic.
    pub forward: Chains,
    /// Profiles in the order the endpoint names them.
    pub profiles: Vec<String>,
}

/// Tiers per direction. For a workload, ingress is traffic to the workload;
/// for a host endpoint, ingress is traffic arriving on the interface.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chains {
    pub ingress: Vec<TierProgram>,
    pub egress: Vec<TierProgram>,
}

impl Chains {
    pub fn direction(&self, direction: Direction) -> &[TierProgram] {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ingress.is_empty() && self.egress.is_empty()
    }
}

/// Traffic direction relative to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// One tier as it applies to one endpoint and direction: only the policies
/// that select the endpoint and govern the direction, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct TierProgram {
    pub name: String,
    pub default_action: TierAction,
    pub policies: Vec<PolicyKey>,
}

/// What a tier does with traffic none of its policies decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TierAction {
    Deny,
    Pass,
}

/// A policy's rules.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyProgram {
    pub key: PolicyKey,
    pub tier: String,
    pub ingress: Vec<RuleProgram>,
    pub egress: Vec<RuleProgram>,
}

impl PolicyProgram {
    pub fn rules(&self, direction: Direction) -> &[RuleProgram] {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

/// A profile's rules. A profile an endpoint names but that does not exist
/// gets a single deny rule per direction (`missing`), as in Calico.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileProgram {
    pub name: String,
    pub ingress: Vec<RuleProgram>,
    pub egress: Vec<RuleProgram>,
    pub missing: bool,
}

impl ProfileProgram {
    pub fn rules(&self, direction: Direction) -> &[RuleProgram] {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

/// A rule's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleAction {
    Allow,
    Deny,
    /// Log and continue with the next rule.
    Log,
    /// Skip the rest of the tier (in a profile: the rest of the profile).
    Pass,
}

/// The IP families a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpVersions {
    pub v4: bool,
    pub v6: bool,
}

impl IpVersions {
    pub fn contains(self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(_) => self.v4,
            IpAddr::V6(_) => self.v6,
        }
    }
}

/// An inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub min: u16,
    pub max: u16,
}

impl PortRange {
    pub fn contains(self, port: u16) -> bool {
        (self.min..=self.max).contains(&port)
    }
}

/// An ICMP type, and optionally code, to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IcmpMatch {
    pub icmp_type: u8,
    pub code: Option<u8>,
}

/// One rule, compiled: selectors and nets replaced by IP set ids, protocols
/// by numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleProgram {
    pub action: RuleAction,
    /// The families in which the rule exists at all (from `ipVersion` and
    /// the families of its nets, as Calico filters rules per family).
    pub ip_versions: IpVersions,
    /// IP protocol number.
    pub protocol: Option<u8>,
    pub not_protocol: Option<u8>,
    pub icmp: Option<IcmpMatch>,
    pub not_icmp: Option<IcmpMatch>,
    pub src: MatchSide,
    pub dst: MatchSide,
}

/// Criteria on one side (source or destination) of a packet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MatchSide {
    /// The address must be in this set of nets.
    pub nets: Option<IpSetId>,
    /// The address must not be in this set of nets.
    pub not_nets: Option<IpSetId>,
    /// The address must be in every one of these sets.
    pub ip_sets: Vec<IpSetId>,
    /// The address must be in none of these sets.
    pub not_ip_sets: Vec<IpSetId>,
    /// With `named_ports`: the port must be in one of these ranges or the
    /// (address, protocol, port) in one of the named-port sets. Both empty:
    /// no port criterion.
    pub ports: Vec<PortRange>,
    pub named_ports: Vec<IpSetId>,
    /// The port must be in none of these ranges, and the (address,
    /// protocol, port) in none of these sets.
    pub not_ports: Vec<PortRange>,
    pub not_named_ports: Vec<IpSetId>,
}

impl MatchSide {
    /// Every IP set this side refers to.
    pub fn ip_set_ids(&self) -> impl Iterator<Item = &IpSetId> {
        self.nets
            .iter()
            .chain(&self.not_nets)
            .chain(&self.ip_sets)
            .chain(&self.not_ip_sets)
            .chain(&self.named_ports)
            .chain(&self.not_named_ports)
    }
}

/// An IP set and its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpSet {
    pub kind: IpSetKind,
    pub members: BTreeSet<IpSetMember>,
}

/// What an IP set holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpSetKind {
    /// Addresses of every endpoint and network set the selector matches.
    Selector { selector: String },
    /// (address, protocol, port) of the named port on every endpoint the
    /// selector matches.
    NamedPort {
        selector: String,
        protocol: NamedPortProtocol,
        port_name: String,
    },
    /// The nets written in a rule's `nets` or `notNets`.
    Nets,
}

/// The protocol a named-port set is for (the rule's protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NamedPortProtocol {
    Tcp,
    Udp,
    Sctp,
    /// The rule names no protocol: every protocol the port is declared with.
    Any,
}

impl NamedPortProtocol {
    /// Calico's spelling, which goes into the set's id.
    pub fn as_str(self) -> &'static str {
        match self {
            NamedPortProtocol::Tcp => "tcp",
            NamedPortProtocol::Udp => "udp",
            NamedPortProtocol::Sctp => "sctp",
            NamedPortProtocol::Any => "any",
        }
    }

    /// Whether an endpoint port declared with protocol number `p` belongs.
    pub fn admits(self, p: u8) -> bool {
        match self {
            NamedPortProtocol::Tcp => p == 6,
            NamedPortProtocol::Udp => p == 17,
            NamedPortProtocol::Sctp => p == 132,
            NamedPortProtocol::Any => true,
        }
    }
}

/// One member of an IP set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpSetMember {
    Net(IpNet),
    IpPort {
        addr: IpAddr,
        protocol: u8,
        port: u16,
    },
}

/// Ports always allowed to and from host endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failsafe {
    /// Traffic arriving at the host to these destination ports.
    pub inbound: Vec<ProtoPort>,
    /// Traffic leaving the host to these destination ports.
    pub outbound: Vec<ProtoPort>,
}

/// A protocol and port, optionally limited to a remote net.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProtoPort {
    pub protocol: u8,
    pub port: u16,
    pub net: Option<IpNet>,
}

impl Default for Failsafe {
    /// Calico's defaults (`FailsafeInboundHostPorts`,
    /// `FailsafeOutboundHostPorts`).
    fn default() -> Self {
        let pp = |protocol, port| ProtoPort {
            protocol,
            port,
            net: None,
        };
        const TCP: u8 = 6;
        const UDP: u8 = 17;
        Failsafe {
            inbound: vec![
                pp(TCP, 22),
                pp(UDP, 68),
                pp(TCP, 179),
                pp(TCP, 2379),
                pp(TCP, 2380),
                pp(TCP, 5473),
                pp(TCP, 6443),
                pp(TCP, 6666),
                pp(TCP, 6667),
            ],
            outbound: vec![
                pp(UDP, 53),
                pp(UDP, 67),
                pp(TCP, 179),
                pp(TCP, 2379),
                pp(TCP, 2380),
                pp(TCP, 5473),
                pp(TCP, 6443),
                pp(TCP, 6666),
                pp(TCP, 6667),
            ],
        }
    }
}
