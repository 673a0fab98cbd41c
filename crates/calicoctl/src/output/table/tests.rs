//! Table formatting of every kind, against what calicoctl prints.

use serde_json::{Value, json};

use super::*;

fn ps(kind: Kind, resources: &[Value]) -> String {
    table(
        kind,
        &default_headings(kind, false, false),
        resources,
        &CellContext::default(),
    )
    .unwrap()
}

fn wide(kind: Kind, resources: &[Value]) -> String {
    table(
        kind,
        &default_headings(kind, true, false),
        resources,
        &CellContext::default(),
    )
    .unwrap()
}

#[test]
fn layout_pads_every_column_and_ends_with_a_blank_line() {
    let out = render(&["NAME", "CIDR"], &[vec!["p".into(), "10.0.0.0/8".into()]]);
    assert_eq!(out, "NAME   CIDR         \np      10.0.0.0/8   \n\n");
    // Columns are at least five wide, as tabwriter's minwidth says.
    assert_eq!(render(&["A"], &[]), "A    \n\n");
}

#[test]
fn ippool() {
    let pools = [
        json!({"metadata": {"name": "default-ipv4-ippool"}, "spec": {"cidr": "192.168.0.0/16", "ipipMode": "Always",
               "natOutgoing": true, "nodeSelector": "all()", "assignmentMode": "Automatic"}}),
        json!({"metadata": {"name": "p2"}, "spec": {"cidr": "10.10.0.0/16", "vxlanMode": "CrossSubnet",
               "disabled": true, "disableBGPExport": true, "nodeSelector": "zone == 'a'"}}),
    ];
    assert_eq!(
        ps(Kind::IpPool, &pools),
        "\
NAME                  CIDR             SELECTOR      
default-ipv4-ippool   192.168.0.0/16   all()         
p2                    10.10.0.0/16     zone == 'a'   

"
    );
    assert_eq!(
        wide(Kind::IpPool, &pools),
        "\
NAME                  CIDR             NAT     IPIPMODE   VXLANMODE     DISABLED   DISABLEBGPEXPORT   SELECTOR      ASSIGNMENTMODE   
default-ipv4-ippool   192.168.0.0/16   true    Always     Never         false      false              all()         Automatic        
p2                    10.10.0.0/16     false   Never      CrossSubnet   true       true               zone == 'a'   <nil>            

"
    );
}

#[test]
fn bgp_configuration_peer_and_filter() {
    let configs = [
        json!({"metadata": {"name": "default"}, "spec": {"logSeverityScreen": "Info", "nodeToNodeMeshEnabled": false, "asNumber": 63400}}),
        json!({"metadata": {"name": "node.a"}, "spec": {}}),
    ];
    assert_eq!(
        ps(Kind::BgpConfiguration, &configs),
        "\
NAME      LOGSEVERITY   MESHENABLED   ASNUMBER   
default   Info          false         63400      
node.a                  -             -          

"
    );
    let peers = [
        json!({"metadata": {"name": "rack1-tor"}, "spec": {"peerIP": "192.20.30.40", "asNumber": 64567, "nodeSelector": "rack == 'rack-1'"}}),
        json!({"metadata": {"name": "global"}, "spec": {"peerIP": "10.0.0.1", "asNumber": 64512}}),
        json!({"metadata": {"name": "one"}, "spec": {"peerIP": "10.0.0.2", "node": "node1"}}),
    ];
    assert_eq!(
        ps(Kind::BgpPeer, &peers),
        "\
NAME        PEERIP         NODE               ASN     
rack1-tor   192.20.30.40   rack == 'rack-1'   64567   
global      10.0.0.1       (global)           64512   
one         10.0.0.2       node1              0       

"
    );
    let filters =
        [json!({"metadata": {"name": "f"}, "spec": {"exportV4": [{}, {}], "importV6": [{}]}})];
    assert_eq!(
        ps(Kind::BgpFilter, &filters),
        "NAME   NUMEXPORTV4   NUMIMPORTV4   NUMEXPORTV6   NUMIMPORTV6   \nf      2             0             0             1             \n\n"
    );
}

#[test]
fn cluster_information_and_configs() {
    let info = [
        json!({"metadata": {"name": "default"}, "spec": {"clusterGUID": "abc", "clusterType": "k8s,bgp",
                        "calicoVersion": "v3.31.0", "datastoreReady": true}}),
    ];
    assert_eq!(
        ps(Kind::ClusterInformation, &info),
        "\
NAME      CLUSTERGUID   CLUSTERTYPE   CALICOVERSION   DATASTOREREADY   
default   abc           k8s,bgp       v3.31.0         true             

"
    );
    let empty = [json!({"metadata": {"name": "default"}, "spec": {}})];
    assert!(ps(Kind::ClusterInformation, &empty).contains("<nil>"));
    assert_eq!(
        ps(Kind::FelixConfiguration, &empty),
        "NAME      \ndefault   \n\n"
    );
    assert_eq!(
        wide(Kind::KubeControllersConfiguration, &empty),
        "NAME      \ndefault   \n\n"
    );
    let ipam = [
        json!({"metadata": {"name": "default"}, "spec": {"strictAffinity": false, "autoAllocateBlocks": true}}),
    ];
    assert_eq!(
        wide(Kind::IpamConfiguration, &ipam),
        "NAME      STRICTAFFINITY   AUTOALLOCATEBLOCKS   MAXBLOCKSPERHOST   \ndefault   false            true                 0                  \n\n"
    );
}

#[test]
fn policies_and_tiers() {
    let gnps = [
        json!({"metadata": {"name": "allow-dns"}, "spec": {"tier": "default", "order": 100, "selector": "all()"}}),
        json!({"metadata": {"name": "sec.deny"}, "spec": {"tier": "security", "selector": "app == 'db' && env != 'dev'"}}),
    ];
    assert_eq!(
        ps(Kind::GlobalNetworkPolicy, &gnps),
        "NAME        TIER       \nallow-dns   default    \nsec.deny    security   \n\n"
    );
    assert_eq!(
        wide(Kind::GlobalNetworkPolicy, &gnps),
        "\
NAME        TIER       ORDER   SELECTOR                      
allow-dns   default    100     all()                         
sec.deny    security   <nil>   app == 'db' && env != 'dev'   

"
    );
    assert_eq!(
        wide(Kind::StagedGlobalNetworkPolicy, &gnps),
        wide(Kind::GlobalNetworkPolicy, &gnps)
    );

    let nps = [
        json!({"metadata": {"name": "knp.default.web", "namespace": "prod"},
                      "spec": {"tier": "default", "order": 1000, "selector": "projectcalico.org/orchestrator == 'k8s'"}}),
    ];
    assert_eq!(
        ps(Kind::NetworkPolicy, &nps),
        "NAME              TIER      \nknp.default.web   default   \n\n"
    );
    let with_ns = table(
        Kind::NetworkPolicy,
        &default_headings(Kind::NetworkPolicy, false, true),
        &nps,
        &CellContext::default(),
    )
    .unwrap();
    assert_eq!(
        with_ns,
        "NAMESPACE   NAME              TIER      \nprod        knp.default.web   default   \n\n"
    );
    let snp = table(
        Kind::StagedNetworkPolicy,
        &default_headings(Kind::StagedNetworkPolicy, true, true),
        &nps,
        &CellContext::default(),
    )
    .unwrap();
    assert!(
        snp.starts_with("NAMESPACE   NAME              TIER      ORDER   SELECTOR"),
        "{snp}"
    );

    let tiers = [
        json!({"metadata": {"name": "default"}, "spec": {"order": 1000000, "defaultAction": "Deny"}}),
        json!({"metadata": {"name": "kube-admin"}, "spec": {"order": 1000}}),
        json!({"metadata": {"name": "kube-baseline"}, "spec": {"order": 10000000}}),
        json!({"metadata": {"name": "security"}, "spec": {"order": 100.5}}),
        json!({"metadata": {"name": "unordered"}, "spec": {}}),
    ];
    assert_eq!(
        ps(Kind::Tier, &tiers),
        "\
NAME            ORDER   
default         1e+06   
kube-admin      1000    
kube-baseline   1e+07   
security        100.5   
unordered       <nil>   

"
    );
}

#[test]
fn network_sets_reservations_and_truncation() {
    let nets: Vec<String> = (0..12).map(|i| format!("10.{i}.0.0/16")).collect();
    let sets = [json!({"metadata": {"name": "big"}, "spec": {"nets": nets}})];
    let out = wide(Kind::GlobalNetworkSet, &sets);
    let row = out.lines().nth(1).unwrap();
    let cell = row.trim_start_matches("big").trim();
    assert_eq!(cell.len(), 80, "{cell}");
    assert!(cell.ends_with("..."), "{cell}");
    assert!(cell.starts_with("10.0.0.0/16,10.1.0.0/16,"), "{cell}");
    assert_eq!(ps(Kind::GlobalNetworkSet, &sets), "NAME   \nbig    \n\n");

    let ns = [
        json!({"metadata": {"name": "ext", "namespace": "n1"}, "spec": {"nets": ["1.2.3.4/32", "5.6.7.0/24"]}}),
    ];
    assert_eq!(
        wide(Kind::NetworkSet, &ns),
        "NAME   NETS                    \next    1.2.3.4/32,5.6.7.0/24   \n\n"
    );
    let res = [json!({"metadata": {"name": "r"}, "spec": {"reservedCIDRs": ["10.0.0.0/30"]}})];
    assert_eq!(
        wide(Kind::IpReservation, &res),
        "NAME   CIDRS         \nr      10.0.0.0/30   \n\n"
    );
}

#[test]
fn endpoints_nodes_profiles() {
    let heps = [
        json!({"metadata": {"name": "eth0-node1"}, "spec": {"node": "node1", "interfaceName": "eth0",
                       "expectedIPs": ["10.0.0.1", "10.0.0.2"], "profiles": ["a", "b"]}}),
    ];
    assert_eq!(
        wide(Kind::HostEndpoint, &heps),
        "\
NAME         NODE    INTERFACE   IPS                 PROFILES   
eth0-node1   node1   eth0        10.0.0.1,10.0.0.2   a,b        

"
    );
    let weps = [
        json!({"metadata": {"name": "node1-k8s-web-eth0", "namespace": "prod"},
                       "spec": {"orchestrator": "k8s", "node": "node1", "pod": "web", "interfaceName": "cali1234",
                                "ipNetworks": ["192.168.1.5/32"], "profiles": ["kns.prod"],
                                "ipNATs": [{"internalIP": "192.168.1.5", "externalIP": "1.2.3.4"}]}}),
    ];
    assert_eq!(
        ps(Kind::WorkloadEndpoint, &weps),
        "WORKLOAD   NODE    NETWORKS         INTERFACE   \nweb        node1   192.168.1.5/32   cali1234    \n\n"
    );
    assert_eq!(
        wide(Kind::WorkloadEndpoint, &weps),
        "\
NAME                 WORKLOAD   NODE    NETWORKS         INTERFACE   PROFILES   NATS                    
node1-k8s-web-eth0   web        node1   192.168.1.5/32   cali1234    kns.prod   {192.168.1.5 1.2.3.4}   

"
    );
    let all_ns = table(
        Kind::WorkloadEndpoint,
        &default_headings(Kind::WorkloadEndpoint, false, true),
        &weps,
        &CellContext::default(),
    )
    .unwrap();
    assert!(all_ns.starts_with("NAMESPACE   WORKLOAD"), "{all_ns}");

    let nodes = [
        json!({"metadata": {"name": "node1"}, "spec": {"bgp": {"ipv4Address": "10.0.0.1/24", "asNumber": 65001}}}),
        json!({"metadata": {"name": "node2"}, "spec": {"bgp": {"ipv4Address": "10.0.0.2/24", "ipv6Address": "fd00::2/64"}}}),
        json!({"metadata": {"name": "node3"}, "spec": {}}),
    ];
    let ctx = CellContext {
        default_as_number: Some("63400".into()),
    };
    assert_eq!(
        table(
            Kind::Node,
            &default_headings(Kind::Node, true, false),
            &nodes,
            &ctx
        )
        .unwrap(),
        "\
NAME    ASN       IPV4          IPV6         
node1   65001     10.0.0.1/24                
node2   (63400)   10.0.0.2/24   fd00::2/64   
node3                                        

"
    );
    assert!(wide(Kind::Node, &nodes[1..2]).contains("(64512)"));

    let status = [
        json!({"metadata": {"name": "s"}, "spec": {"node": "node1", "classes": ["Agent", "BGP"]}}),
    ];
    assert_eq!(
        wide(Kind::CalicoNodeStatus, &status),
        "NAME   NODE    CLASSES     \ns      node1   Agent,BGP   \n\n"
    );

    let profiles = [
        json!({"metadata": {"name": "kns.prod"}, "spec": {"labelsToApply": {"z": "1", "pcns.a": "b"}}}),
    ];
    assert_eq!(
        wide(Kind::Profile, &profiles),
        "NAME       LABELS         \nkns.prod   pcns.a=b,z=1   \n\n"
    );
}

#[test]
fn staged_kubernetes_policy_prints_go_struct() {
    let p = [
        json!({"metadata": {"name": "a", "namespace": "n"}, "spec": {"podSelector": {"matchLabels": {"app": "web", "b": "c"},
               "matchExpressions": [{"key": "tier", "operator": "In", "values": ["x", "y"]}]}}}),
        json!({"metadata": {"name": "b", "namespace": "n"}, "spec": {"podSelector": {}}}),
    ];
    let out = wide(Kind::StagedKubernetesNetworkPolicy, &p);
    assert!(
        out.contains("{map[app:web b:c] [{tier In [x y]}]}"),
        "{out}"
    );
    assert!(out.contains("{map[] []}"), "{out}");
}

#[test]
fn custom_columns_and_unknown_headings() {
    let pools =
        [json!({"metadata": {"name": "p"}, "spec": {"cidr": "10.0.0.0/8", "ipipMode": "Always"}})];
    let out = table(
        Kind::IpPool,
        &["NAME", "IPIPMODE"],
        &pools,
        &CellContext::default(),
    )
    .unwrap();
    assert_eq!(out, "NAME   IPIPMODE   \np      Always     \n\n");
    let err = table(
        Kind::IpPool,
        &["NAME", "BOGUS"],
        &pools,
        &CellContext::default(),
    )
    .unwrap_err();
    assert_eq!(err.heading, "BOGUS");
    assert!(
        err.to_string()
            .contains("valid values are: ASSIGNMENTMODE, CIDR"),
        "{err}"
    );
    assert!(table(Kind::Tier, &["BOGUS"], &[], &CellContext::default()).is_err());
}

#[test]
fn every_kind_has_columns_with_cells() {
    for kind in Kind::ALL {
        let probe = json!({"metadata": {"name": "x", "namespace": "y"}, "spec": {}});
        for wide in [false, true] {
            let headings = default_headings(kind, wide, true);
            assert!(!headings.is_empty(), "{kind}");
            table(
                kind,
                &headings,
                std::slice::from_ref(&probe),
                &CellContext::default(),
            )
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        }
    }
}
