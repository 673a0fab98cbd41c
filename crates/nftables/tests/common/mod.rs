//! Shared by the integration tests: a Calico-shaped sample ruleset, and a
//! scratch network namespace with nft run inside it.

#![allow(dead_code)]

use std::process::Command;

use calico_netlink::testing::ScratchNetns;
use calico_nftables::{
    BaseChain, Chain, CtState, DataType, Hook, IpFamily, Key, Map, NftCli, NftCommand, Policy,
    PortProto, Reconciler, Rhs, Rule, Ruleset, Set, Table, TableId, Value, Verdict,
};

pub fn calico() -> TableId {
    TableId::inet("calico")
}

pub fn v4(s: &str) -> Value {
    Value::net(s.parse::<ipnet::IpNet>().expect("test prefix"))
}

/// Marks in the style of Calico's: one bit says "accepted by policy".
pub const MARK_ACCEPT: u32 = 0x0001_0000;
pub const MARK_PASS: u32 = 0x0002_0000;
pub const MARK_SCRATCH: u32 = 0x0003_0000;

/// A table shaped like the agent's: dispatch maps from interface to
/// per-workload chains, policy chains matching on IP sets, named ports,
/// ICMP, logging, marks.
pub fn sample_table(workloads: usize) -> Table {
    let mut table = Table::new();
    let ifaces: Vec<String> = (0..workloads).map(|i| format!("cali{i:08x}")).collect();

    table.sets.insert(
        "cali40all-hosts".into(),
        std::sync::Arc::new(Set::new(DataType::Ipv4Addr, true).with_elements([
            v4("10.0.0.0/24"),
            v4("10.0.1.0/24"),
            v4("192.168.7.1/32"),
        ])),
    );
    table.sets.insert(
        "cali40s-web".into(),
        std::sync::Arc::new(Set::new(DataType::Ipv4Addr, false).with_elements(
            (0..workloads as u32).map(|i| Value::addr(std::net::Ipv4Addr::from(0x0a80_0000 + i))),
        )),
    );
    table.sets.insert(
        "cali60s-web".into(),
        std::sync::Arc::new(Set::new(DataType::Ipv6Addr, true).with_elements([
            Value::net("fd00:10::/64".parse::<ipnet::IpNet>().unwrap()),
            Value::addr("fd00:20::5".parse::<std::net::Ipv6Addr>().unwrap()),
        ])),
    );
    table.sets.insert(
        "cali40np-http".into(),
        std::sync::Arc::new(
            Set::new(
                DataType::Concat(vec![
                    DataType::Ipv4Addr,
                    DataType::InetProto,
                    DataType::InetService,
                ]),
                false,
            )
            .with_elements([
                Value::Concat(vec![
                    Value::addr([10, 128, 0, 1]),
                    Value::Int(6),
                    Value::port(8080),
                ]),
                Value::Concat(vec![
                    Value::addr([10, 128, 0, 2]),
                    Value::Int(6),
                    Value::port(8443),
                ]),
            ]),
        ),
    );
    table.sets.insert(
        "cali-ports-admin".into(),
        std::sync::Arc::new(
            Set::new(DataType::InetService, true)
                .with_elements([Value::port(22), Value::ports(9000, 9100)]),
        ),
    );

    let mut from_wl = Map::new(DataType::IfName, false);
    let mut to_wl = Map::new(DataType::IfName, false);
    for iface in &ifaces {
        from_wl.entries.insert(
            Value::name(iface),
            Verdict::goto(format!("cali-fw-{iface}")),
        );
        to_wl.entries.insert(
            Value::name(iface),
            Verdict::goto(format!("cali-tw-{iface}")),
        );
    }
    table
        .maps
        .insert("cali-from-wl-dispatch".into(), std::sync::Arc::new(from_wl));
    table
        .maps
        .insert("cali-to-wl-dispatch".into(), std::sync::Arc::new(to_wl));

    table.chains.insert(
        "filter-FORWARD".into(),
        std::sync::Arc::new(Chain::base(
            BaseChain::filter(Hook::Forward, 0, Policy::Accept),
            [
                Rule::new()
                    .matching(
                        Key::CtState,
                        Value::CtState(CtState::ESTABLISHED | CtState::RELATED),
                    )
                    .accept(),
                Rule::new()
                    .matching(Key::CtState, Value::CtState(CtState::INVALID))
                    .drop(),
                Rule::new().set_mark(MARK_SCRATCH, 0),
                Rule::new().vmap(Key::Iifname, "cali-from-wl-dispatch"),
                Rule::new().vmap(Key::Oifname, "cali-to-wl-dispatch"),
                Rule::new()
                    .matching(Key::Iifname, Value::name("cali*"))
                    .counter()
                    .drop()
                    .comment("Unknown interface"),
            ],
        )),
    );
    table.chains.insert(
        "filter-INPUT".into(),
        std::sync::Arc::new(Chain::base(
            BaseChain::filter(Hook::Input, 0, Policy::Accept),
            [
                Rule::new()
                    .matching(Key::Iifname, Value::name("cali*"))
                    .matching(Key::Dport(PortProto::Tcp), Rhs::set("cali-ports-admin"))
                    .drop(),
                Rule::new()
                    .matching(
                        Key::IcmpType(IpFamily::V6),
                        Rhs::any_of([Value::Int(133), Value::Int(135), Value::Int(136)]),
                    )
                    .accept(),
            ],
        )),
    );
    table.chains.insert(
        "cali-pi-default.web".into(),
        std::sync::Arc::new(Chain::regular([
            Rule::new()
                .matching(Key::Saddr(IpFamily::V4), Rhs::set("cali40all-hosts"))
                .matching(
                    Key::Dport(PortProto::Tcp),
                    Rhs::any_of([Value::port(80), Value::port(443)]),
                )
                .set_mark(MARK_ACCEPT, MARK_ACCEPT)
                .ret()
                .comment("Policy default.web ingress"),
            Rule::new()
                .matching(
                    Key::Concat(vec![
                        Key::Daddr(IpFamily::V4),
                        Key::L4Proto,
                        Key::Dport(PortProto::Th),
                    ]),
                    Rhs::set("cali40np-http"),
                )
                .set_mark(MARK_ACCEPT, MARK_ACCEPT)
                .ret(),
            Rule::new()
                .matching(Key::Saddr(IpFamily::V6), Rhs::set("cali60s-web"))
                .matching(Key::L4Proto, Value::Int(17))
                .set_mark(MARK_ACCEPT, MARK_ACCEPT)
                .ret(),
            Rule::new()
                .matching(Key::IcmpType(IpFamily::V4), Value::Int(8))
                .matching(Key::IcmpCode(IpFamily::V4), Value::Int(0))
                .set_mark(MARK_ACCEPT, MARK_ACCEPT)
                .ret(),
            Rule::new()
                .not_matching(
                    Key::Saddr(IpFamily::V4),
                    Rhs::any_of([v4("10.0.0.0/8"), v4("172.16.0.0/12")]),
                )
                .matching(Key::Dport(PortProto::Udp), Value::ports(5000, 5100))
                .log("calico-packet: ")
                .drop(),
        ])),
    );
    for iface in &ifaces {
        table.chains.insert(
            format!("cali-tw-{iface}"),
            std::sync::Arc::new(Chain::regular([
                Rule::new().set_mark(MARK_ACCEPT | MARK_PASS, 0),
                Rule::new().jump("cali-pi-default.web"),
                Rule::new()
                    .matching(Key::Mark { mask: MARK_ACCEPT }, Value::Int(MARK_ACCEPT))
                    .accept(),
                Rule::new()
                    .counter()
                    .drop()
                    .comment("Drop if no policies passed packet"),
            ])),
        );
        table.chains.insert(
            format!("cali-fw-{iface}"),
            std::sync::Arc::new(Chain::regular([
                Rule::new()
                    .not_matching(Key::Saddr(IpFamily::V4), Value::addr([10, 128, 0, 1]))
                    .matching(Key::Iifname, Value::name(iface.as_str()))
                    .drop()
                    .comment("Anti-spoof"),
                Rule::new()
                    .matching(Key::Mark { mask: MARK_PASS }, Value::Int(0))
                    .accept(),
            ])),
        );
    }
    table
}

pub fn sample_ruleset(workloads: usize) -> Ruleset {
    Ruleset::new().with_table(calico(), sample_table(workloads))
}

/// A scratch namespace with nft run inside it.
pub struct NftNetns {
    pub netns: ScratchNetns,
}

impl NftNetns {
    pub fn new(tag: &str) -> NftNetns {
        calico_testutil::require_binary("nft", "nftables");
        calico_testutil::require_binary("nsenter", "util-linux");
        NftNetns {
            netns: ScratchNetns::new(tag),
        }
    }

    pub fn command(&self) -> NftCommand {
        NftCommand::in_netns(self.netns.path())
    }

    pub fn reconciler(&self, owned: impl IntoIterator<Item = TableId>) -> Reconciler<NftCli> {
        Reconciler::new(NftCli::new(self.command()), owned)
    }

    /// A reconciler writing through nft's library in the namespace.
    pub fn library_reconciler(
        &self,
        owned: impl IntoIterator<Item = TableId>,
    ) -> Reconciler<calico_nftables::NftLib> {
        let lib = calico_nftables::NftLib::open(Some(self.netns.netns()))
            .expect("libnftables (libnftables1, installed with nftables)");
        Reconciler::new(lib, owned)
    }

    /// Runs nft with `args` in the namespace; panics with stderr on failure.
    pub fn nft(&self, args: &[&str]) -> String {
        let output = Command::new("nsenter")
            .arg(format!("--net={}", self.netns.path().display()))
            .arg("nft")
            .args(args)
            .output()
            .expect("running nft");
        assert!(
            output.status.success(),
            "nft {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `nft list ruleset` in the namespace, for before/after comparisons.
    pub fn ruleset_text(&self) -> String {
        self.nft(&["list", "ruleset"])
    }
}
