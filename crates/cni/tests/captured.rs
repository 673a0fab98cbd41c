//! Round trips on results captured from the reference plugins
//! (containernetworking-plugins 1.1.1: `ptp` with `host-local` IPAM,
//! dual stack) in each result shape: reading them and writing them back in
//! the same version gives the same bytes.

use calico_cni::result::CniResult;
use calico_cni::version::SpecVersion;

fn captured(name: &str) -> String {
    let path = format!("{}/tests/data/captured/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn captured_results_round_trip_byte_for_byte() {
    for plugin in ["ptp", "host-local"] {
        for version in ["0.2.0", "0.3.1", "0.4.0", "1.0.0"] {
            let text = captured(&format!("{plugin}-result-{version}.json"));
            let result = CniResult::from_slice(text.as_bytes()).unwrap();
            let version: SpecVersion = version.parse().unwrap();
            assert_eq!(
                result.to_json(version).unwrap(),
                text.trim_end(),
                "{plugin} {version}"
            );
        }
    }
}

#[test]
fn captured_results_read_the_same_in_every_shape() {
    let v1 = CniResult::from_slice(captured("ptp-result-1.0.0.json").as_bytes()).unwrap();
    assert_eq!(v1.interfaces.len(), 2);
    assert_eq!(
        v1.interfaces[1].sandbox.as_deref(),
        Some("/var/run/netns/capns100")
    );
    assert_eq!(v1.ips[0].interface, Some(1));
    assert_eq!(v1.ips[0].address.to_string(), "10.88.0.11/16");
    assert_eq!(v1.ips[1].gateway, Some("fd00:88::1".parse().unwrap()));
    assert_eq!(v1.routes.len(), 2);
    assert_eq!(v1.dns.nameservers, vec!["10.96.0.10"]);

    let v031 = CniResult::from_slice(captured("ptp-result-0.3.1.json").as_bytes()).unwrap();
    assert_eq!(v031.ips.len(), 2);
    assert_eq!(v031.ips[1].address.to_string(), "fd00:88::2/64");

    // 0.2.0 splits routes by family under ip4/ip6; reading gathers them.
    let v020 = CniResult::from_slice(captured("host-local-result-0.2.0.json").as_bytes()).unwrap();
    assert_eq!(v020.ips.len(), 2);
    let dsts: Vec<String> = v020.routes.iter().map(|r| r.dst.0.to_string()).collect();
    assert_eq!(dsts, vec!["0.0.0.0/0", "::/0"]);
    assert!(v020.interfaces.is_empty());
}

#[test]
fn a_result_converts_between_versions_as_the_reference_does() {
    // The 1.0.0 capture, down-converted to 0.3.1, has the 0.3.1 capture's
    // shape (addresses differ as they were separate allocations).
    let v1 = CniResult::from_slice(captured("ptp-result-1.0.0.json").as_bytes()).unwrap();
    let down = v1.to_value(SpecVersion::V0_3_1).unwrap();
    let reference: serde_json::Value =
        serde_json::from_str(&captured("ptp-result-0.3.1.json")).unwrap();
    let keys = |v: &serde_json::Value| -> Vec<String> {
        v["ips"][0].as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(keys(&down), keys(&reference));
    assert_eq!(down["ips"][0]["version"], "4");
    let legacy = v1.to_value(SpecVersion::V0_2_0).unwrap();
    let legacy_reference: serde_json::Value =
        serde_json::from_str(&captured("ptp-result-0.2.0.json")).unwrap();
    assert_eq!(
        legacy.as_object().unwrap().keys().collect::<Vec<_>>(),
        legacy_reference
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>()
    );
    assert_eq!(legacy["ip6"]["routes"][0]["dst"], "::/0");
}
