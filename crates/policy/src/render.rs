//! A stable, human-readable text form of a [`Dataplane`], for golden files,
//! logs and `calicoctl` output. One line per tier, rule and IP set, in key
//! order.

use std::fmt::{self, Display, Formatter, Write as _};

use crate::program::{
    Chains, Dataplane, EndpointProgram, IcmpMatch, IpSet, IpSetKind, IpSetMember, MatchSide,
    PolicyProgram, PortRange, ProfileProgram, RuleAction, RuleProgram,
};

fn ranges(r: &[PortRange]) -> String {
    r.iter()
        .map(|p| {
            if p.min == p.max {
                p.min.to_string()
            } else {
                format!("{}:{}", p.min, p.max)
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn side(out: &mut String, name: &str, s: &MatchSide) {
    let mut w = |what: &str, v: String| {
        let _ = write!(out, " {name}.{what}={v}");
    };
    if let Some(n) = &s.nets {
        w("nets", n.to_string());
    }
    if let Some(n) = &s.not_nets {
        w("notNets", n.to_string());
    }
    for id in &s.ip_sets {
        w("in", id.to_string());
    }
    for id in &s.not_ip_sets {
        w("notIn", id.to_string());
    }
    if !s.ports.is_empty() {
        w("ports", ranges(&s.ports));
    }
    for id in &s.named_ports {
        w("namedPort", id.to_string());
    }
    if !s.not_ports.is_empty() {
        w("notPorts", ranges(&s.not_ports));
    }
    for id in &s.not_named_ports {
        w("notNamedPort", id.to_string());
    }
}

fn icmp(m: &IcmpMatch) -> String {
    match m.code {
        Some(c) => format!("{}/{c}", m.icmp_type),
        None => m.icmp_type.to_string(),
    }
}

impl Display for RuleProgram {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mut out = format!("{:?}", self.action);
        match (self.ip_versions.v4, self.ip_versions.v6) {
            (true, true) => {}
            (true, false) => out.push_str(" ipv4"),
            (false, true) => out.push_str(" ipv6"),
            (false, false) => out.push_str(" never"),
        }
        if let Some(p) = self.protocol {
            let _ = write!(out, " proto={p}");
        }
        if let Some(p) = self.not_protocol {
            let _ = write!(out, " notProto={p}");
        }
        if let Some(m) = &self.icmp {
            let _ = write!(out, " icmp={}", icmp(m));
        }
        if let Some(m) = &self.not_icmp {
            let _ = write!(out, " notIcmp={}", icmp(m));
        }
        side(&mut out, "src", &self.src);
        side(&mut out, "dst", &self.dst);
        f.write_str(&out)
    }
}

fn rules(f: &mut Formatter<'_>, direction: &str, rules: &[RuleProgram]) -> fmt::Result {
    for (i, r) in rules.iter().enumerate() {
        writeln!(f, "  {direction} {i}: {r}")?;
    }
    Ok(())
}

fn chains(f: &mut Formatter<'_>, name: &str, c: &Chains) -> fmt::Result {
    for (direction, tiers) in [("ingress", &c.ingress), ("egress", &c.egress)] {
        for t in tiers {
            let policies: Vec<String> = t.policies.iter().map(ToString::to_string).collect();
            writeln!(
                f,
                "  {name}{direction} tier {} (default {:?}): {}",
                t.name,
                t.default_action,
                policies.join(", ")
            )?;
        }
    }
    Ok(())
}

impl Display for EndpointProgram {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let addrs: Vec<String> = self.addresses.iter().map(ToString::to_string).collect();
        writeln!(
            f,
            "{} if={} addrs={}",
            self.key,
            self.interface_name,
            addrs.join(",")
        )?;
        chains(f, "", &self.normal)?;
        chains(f, "untracked ", &self.untracked)?;
        chains(f, "preDNAT ", &self.pre_dnat)?;
        chains(f, "forward ", &self.forward)?;
        writeln!(f, "  profiles: {}", self.profiles.join(", "))
    }
}

impl Display for PolicyProgram {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} (tier {})", self.key, self.tier)?;
        rules(f, "ingress", &self.ingress)?;
        rules(f, "egress", &self.egress)
    }
}

impl Display for ProfileProgram {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let missing = if self.missing { " (missing: deny)" } else { "" };
        writeln!(f, "profile {}{missing}", self.name)?;
        rules(f, "ingress", &self.ingress)?;
        rules(f, "egress", &self.egress)
    }
}

impl Display for IpSetMember {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            IpSetMember::Net(n) => write!(f, "{n}"),
            IpSetMember::IpPort {
                addr,
                protocol,
                port,
            } => write!(f, "{addr},{protocol}:{port}"),
        }
    }
}

impl Display for IpSet {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.kind {
            IpSetKind::Selector { selector } => write!(f, "selector {selector}")?,
            IpSetKind::NamedPort {
                selector,
                protocol,
                port_name,
            } => write!(
                f,
                "named port {port_name}/{} on {selector}",
                protocol.as_str()
            )?,
            IpSetKind::Nets => write!(f, "nets")?,
        }
        let members: Vec<String> = self.members.iter().map(ToString::to_string).collect();
        write!(f, ": {}", members.join(" "))
    }
}

impl Display for Dataplane {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for e in self.endpoints.values() {
            write!(f, "{e}")?;
        }
        for p in self.policies.values() {
            write!(f, "{p}")?;
        }
        for p in self.profiles.values() {
            write!(f, "{p}")?;
        }
        for (id, s) in &self.ip_sets {
            writeln!(f, "ipset {id} {s}")?;
        }
        Ok(())
    }
}

impl Display for RuleAction {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}
