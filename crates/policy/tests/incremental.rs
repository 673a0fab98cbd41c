//! What the engine reports after each update: exactly the endpoints,
//! policies, profiles and IP set members that changed.

mod common;

use std::collections::BTreeSet;

use calico_model::{Action, PolicyType};
use calico_policy::program::{IpSetKind, IpSetMember, NamedPortProtocol, TierAction};
use calico_policy::{EngineConfig, EngineError, IpSetId, PolicyEngine, PolicyKey, Update};
use calico_selector::Selector;
use common::*;

fn net(s: &str) -> IpSetMember {
    IpSetMember::Net(s.parse().unwrap())
}

fn set_id(selector: &str) -> IpSetId {
    IpSetId(Selector::parse(selector).unwrap().unique_id())
}

fn set_of(keys: &[&calico_policy::EndpointKey]) -> BTreeSet<calico_policy::EndpointKey> {
    keys.iter().map(|k| (*k).clone()).collect()
}

fn allow_from_clients() -> calico_model::NetworkPolicy {
    let mut p = np("ns1", "allow-clients", "app == 'server'");
    p.spec.ingress = vec![rule(Action::Allow, |r| {
        r.source.selector = "app == 'client'".into()
    })];
    p
}

/// The set Calico builds for `app == 'client'` in a ns1 policy.
fn clients_set() -> IpSetId {
    set_id("(projectcalico.org/namespace == 'ns1') && (app == 'client')")
}

#[test]
fn changes_follow_each_update() {
    let mut w = World::new();
    let server = pod_key("ns1", "server");
    let client = pod_key("ns1", "client");

    let c = w.apply(namespace("ns1", &[]));
    assert!(
        c.endpoints_updated.is_empty() && c.profiles_updated.is_empty(),
        "{c:?}"
    );

    let c = w.apply(pod("ns1", "server", "10.0.1.1", &[("app", "server")]));
    assert_eq!(c.endpoints_updated, set_of(&[&server]));
    assert_eq!(c.profiles_updated, ["kns.ns1".to_string()].into());

    let c = w.apply(allow_from_clients());
    let policy = PolicyKey::network_policy("ns1", "allow-clients");
    assert_eq!(c.policies_updated, [policy.clone()].into());
    assert_eq!(c.endpoints_updated, set_of(&[&server]));
    assert_eq!(c.ip_sets_added, [clients_set()].into());
    assert!(c.ip_set_members_added.is_empty());
    let program = w.engine.endpoint_program(&server).unwrap();
    assert_eq!(program.normal.ingress[0].policies, vec![policy.clone()]);
    assert_eq!(program.normal.ingress[0].default_action, TierAction::Deny);
    assert!(program.normal.egress.is_empty());

    // A matching client joins the set; no program changes.
    let c = w.apply(pod("ns1", "client", "10.0.1.2", &[("app", "client")]));
    assert_eq!(c.endpoints_updated, set_of(&[&client]));
    assert!(c.policies_updated.is_empty());
    assert_eq!(
        c.ip_set_members_added,
        [(clients_set(), [net("10.0.1.2/32")].into())].into()
    );

    // Relabelled: leaves the set; its own program is unchanged.
    let c = w.apply(pod("ns1", "client", "10.0.1.2", &[("app", "other")]));
    assert!(c.endpoints_updated.is_empty(), "{c:?}");
    assert_eq!(
        c.ip_set_members_removed,
        [(clients_set(), [net("10.0.1.2/32")].into())].into()
    );

    // New address: only the membership moves.
    w.apply(pod("ns1", "client", "10.0.1.2", &[("app", "client")]));
    let c = w.apply(pod("ns1", "client", "10.0.1.3", &[("app", "client")]));
    assert_eq!(
        c.ip_set_members_added,
        [(clients_set(), [net("10.0.1.3/32")].into())].into()
    );
    assert_eq!(
        c.ip_set_members_removed,
        [(clients_set(), [net("10.0.1.2/32")].into())].into()
    );
    assert_eq!(
        c.endpoints_updated,
        set_of(&[&client]),
        "its addresses are in its program"
    );

    // Rules change, selector unchanged: only the policy is republished.
    let mut p = allow_from_clients();
    p.spec.ingress = vec![rule(Action::Allow, |r| {
        r.source.selector = "app == 'db'".into()
    })];
    let c = w.apply(p);
    assert_eq!(c.policies_updated, [policy.clone()].into());
    assert!(c.endpoints_updated.is_empty());
    assert_eq!(c.ip_sets_removed, [clients_set()].into());
    assert_eq!(
        c.ip_sets_added,
        [set_id(
            "(projectcalico.org/namespace == 'ns1') && (app == 'db')"
        )]
        .into()
    );

    // The policy stops selecting anything: it is no longer published.
    let mut p = allow_from_clients();
    p.spec.selector = "app == 'nothing'".into();
    let c = w.apply(p);
    assert_eq!(c.policies_removed, [policy.clone()].into());
    assert_eq!(c.endpoints_updated, set_of(&[&server]));
    assert!(w.engine.policy_program(&policy).is_none());
    assert!(w.engine.snapshot().ip_sets.is_empty());

    // Deleting the endpoint removes its program and, with the last user,
    // the profile.
    w.apply(Update::DeleteWorkloadEndpoint {
        namespace: "ns1".into(),
        name: "node1-k8s-server-eth0".into(),
    });
    let c = w.apply(Update::DeleteWorkloadEndpoint {
        namespace: "ns1".into(),
        name: "node1-k8s-client-eth0".into(),
    });
    assert_eq!(c.endpoints_removed, set_of(&[&client]));
    assert_eq!(c.profiles_removed, ["kns.ns1".to_string()].into());
}

#[test]
fn shared_addresses_are_counted() {
    let mut w = World::new();
    w.apply(namespace("ns1", &[]));
    w.apply(pod("ns1", "server", "10.0.1.1", &[("app", "server")]));
    w.apply(allow_from_clients());
    w.apply(pod("ns1", "c1", "10.0.1.9", &[("app", "client")]));
    let c = w.apply(pod("ns1", "c2", "10.0.1.9", &[("app", "client")]));
    assert!(c.ip_set_members_added.is_empty(), "already a member: {c:?}");
    let c = w.apply(Update::DeleteWorkloadEndpoint {
        namespace: "ns1".into(),
        name: "node1-k8s-c1-eth0".into(),
    });
    assert!(
        c.ip_set_members_removed.is_empty(),
        "c2 still holds it: {c:?}"
    );
    let members = w.engine.ip_set(&clients_set()).unwrap().members;
    assert_eq!(members, [net("10.0.1.9/32")].into());
}

#[test]
fn named_port_sets_hold_address_protocol_and_port() {
    let mut w = World::new();
    w.apply(namespace("ns1", &[]));
    w.apply(with_port(
        pod("ns1", "web", "10.0.1.5", &[("app", "web")]),
        "http",
        "TCP",
        8080,
    ));
    w.apply(with_port(
        pod("ns1", "web2", "10.0.1.6", &[("app", "web")]),
        "http",
        "TCP",
        9090,
    ));
    w.apply(with_port(
        pod("ns1", "udp", "10.0.1.7", &[("app", "web")]),
        "http",
        "UDP",
        8080,
    ));
    let mut p = gnp("to-http", "all()");
    p.spec.types = vec![PolicyType::Egress];
    p.spec.egress = vec![rule(Action::Allow, |r| {
        r.protocol = tcp();
        r.destination.selector = "app == 'web'".into();
        r.destination.ports = ports(&["http"]);
    })];
    w.apply(p);
    let dp = w.engine.snapshot();
    let (id, set) = dp
        .ip_sets
        .iter()
        .find(|(_, s)| matches!(s.kind, IpSetKind::NamedPort { .. }))
        .expect("a named-port set");
    assert_eq!(
        set.kind,
        IpSetKind::NamedPort {
            selector: Selector::parse("app == 'web'").unwrap().canonical(),
            protocol: NamedPortProtocol::Tcp,
            port_name: "http".into(),
        }
    );
    let expect: BTreeSet<IpSetMember> = [("10.0.1.5", 8080), ("10.0.1.6", 9090)]
        .iter()
        .map(|(a, p)| IpSetMember::IpPort {
            addr: ip(a),
            protocol: 6,
            port: *p,
        })
        .collect();
    assert_eq!(set.members, expect);
    assert!(id.as_str().starts_with("n:"), "{id}");
    let policy = &dp.policies[&PolicyKey::global("to-http")];
    assert_eq!(policy.egress[0].dst.named_ports, vec![id.clone()]);
    assert!(policy.egress[0].dst.ip_sets.is_empty());
}

#[test]
fn invalid_update_keeps_the_previous_version() {
    let mut w = World::new();
    w.apply(namespace("ns1", &[]));
    w.apply(pod("ns1", "server", "10.0.1.1", &[("app", "server")]));
    w.apply(allow_from_clients());
    let before = w.engine.snapshot();
    let mut broken = allow_from_clients();
    broken.spec.ingress[0].source.selector = "app == 'client".into();
    let err = w.engine.apply(broken.into()).unwrap_err();
    let EngineError::Invalid { resource, source } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(resource, "NetworkPolicy ns1/allow-clients");
    assert!(
        source
            .to_string()
            .contains("spec.ingress[0].source.selector"),
        "{source}"
    );
    assert_eq!(w.engine.snapshot(), before);
}

#[test]
fn tier_change_touches_only_its_endpoints() {
    let mut w = World::new();
    w.apply(namespace("ns1", &[]));
    w.apply(pod("ns1", "server", "10.0.1.1", &[("app", "server")]));
    w.apply(pod("ns1", "other", "10.0.1.2", &[("app", "other")]));
    w.apply(tier("sec", Some(10.0), Action::Deny));
    let mut p = np("ns1", "p", "app == 'server'");
    p.spec.tier = "sec".into();
    p.spec.ingress = vec![allow()];
    w.apply(p);
    let c = w.apply(tier("sec", Some(10.0), Action::Pass));
    assert_eq!(c.endpoints_updated, set_of(&[&pod_key("ns1", "server")]));
    assert_eq!(
        w.engine
            .endpoint_program(&pod_key("ns1", "server"))
            .unwrap()
            .normal
            .ingress[0]
            .default_action,
        TierAction::Pass
    );
}

#[test]
fn only_local_endpoints_get_programs_but_all_are_members() {
    let mut engine = PolicyEngine::new(EngineConfig {
        local_node: Some("node1".into()),
        ..EngineConfig::default()
    });
    engine.apply(namespace("ns1", &[]).into()).unwrap();
    engine
        .apply(pod("ns1", "server", "10.0.1.1", &[("app", "server")]).into())
        .unwrap();
    let mut remote = pod("ns1", "client", "10.0.9.9", &[("app", "client")]);
    remote.spec.node = "node2".into();
    let c = engine.apply(remote.into()).unwrap();
    assert!(
        c.endpoints_updated.is_empty(),
        "remote endpoint has no program"
    );
    engine.apply(allow_from_clients().into()).unwrap();
    assert!(engine.endpoint_program(&pod_key("ns1", "client")).is_none());
    assert!(engine.endpoint_program(&pod_key("ns1", "server")).is_some());
    assert_eq!(
        engine.ip_set(&clients_set()).unwrap().members,
        [net("10.0.9.9/32")].into()
    );
    // A policy selecting only remote endpoints is not compiled.
    let mut p = np("ns1", "client-only", "app == 'client'");
    p.spec.ingress = vec![deny()];
    let c = engine.apply(p.into()).unwrap();
    assert!(c.policies_updated.is_empty());
    assert_eq!(engine.stats().active_policies, 1);
}

#[test]
fn batch_reports_the_net_change() {
    let mut engine = PolicyEngine::new(EngineConfig::default());
    let (changes, errors) = engine.apply_all([
        Update::from(namespace("ns1", &[])),
        pod("ns1", "server", "10.0.1.1", &[("app", "server")]).into(),
        allow_from_clients().into(),
        pod("ns1", "client", "10.0.1.2", &[("app", "client")]).into(),
        pod("ns1", "client", "10.0.1.3", &[("app", "client")]).into(),
        tier("bad", Some(1.0), Action::Allow).into(),
    ]);
    assert_eq!(errors.len(), 1, "the Allow default action is refused");
    assert_eq!(changes.ip_sets_added, [clients_set()].into());
    assert_eq!(
        changes.ip_set_members_added,
        [(clients_set(), [net("10.0.1.3/32")].into())].into(),
        "the first address came and went within the batch"
    );
    assert!(changes.ip_set_members_removed.is_empty());
}

#[test]
fn sets_going_out_of_use_and_back_are_reported_in_full() {
    let mut w = World::new();
    w.apply(namespace("ns1", &[]));
    w.apply(pod("ns1", "client", "10.0.1.2", &[("app", "client")]));
    w.apply(allow_from_clients());
    let server = pod("ns1", "server", "10.0.1.1", &[("app", "server")]);
    let c = w.apply(server.clone());
    assert_eq!(c.ip_sets_added, [clients_set()].into());
    assert_eq!(
        c.ip_set_members_added[&clients_set()],
        [net("10.0.1.2/32")].into()
    );
    // The only selected pod goes: the policy and its set go out of use.
    let c = w.apply(Update::DeleteWorkloadEndpoint {
        namespace: "ns1".into(),
        name: "node1-k8s-server-eth0".into(),
    });
    assert_eq!(c.ip_sets_removed, [clients_set()].into());
    assert!(w.engine.ip_set(&clients_set()).is_none());
    // Membership changes while unused are not reported...
    let c = w.apply(pod("ns1", "client2", "10.0.1.3", &[("app", "client")]));
    assert!(c.ip_set_members_added.is_empty(), "{c:?}");
    // ...and the set comes back complete.
    let c = w.apply(server);
    assert_eq!(c.ip_sets_added, [clients_set()].into());
    assert_eq!(
        c.ip_set_members_added[&clients_set()],
        [net("10.0.1.2/32"), net("10.0.1.3/32")].into()
    );
    assert_eq!(w.engine.stats().ip_sets, 1);
}
