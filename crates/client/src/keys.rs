//! Calico's etcd key layout for v3 resources:
//! `/calico/resources/v3/projectcalico.org/<plural>/[<namespace>/]<name>`.

use calico_model::kind::Kind;

const ROOT: &str = "/calico/resources/v3/projectcalico.org";

/// The key of one resource.
pub fn resource_key(kind: Kind, namespace: &str, name: &str) -> String {
    if kind.namespaced() {
        format!("{ROOT}/{}/{namespace}/{name}", kind.plural())
    } else {
        format!("{ROOT}/{}/{name}", kind.plural())
    }
}

/// The prefix under which every resource of `kind` (in `namespace`, when
/// given) lives.
pub fn list_prefix(kind: Kind, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if kind.namespaced() && !ns.is_empty() => {
            format!("{ROOT}/{}/{ns}/", kind.plural())
        }
        _ => format!("{ROOT}/{}/", kind.plural()),
    }
}

/// The namespace and name a key names, if it is a key of `kind`.
pub fn parse_key(kind: Kind, key: &str) -> Option<(String, String)> {
    let rest = key.strip_prefix(&list_prefix(kind, None))?;
    if kind.namespaced() {
        let (ns, name) = rest.split_once('/')?;
        (!ns.is_empty() && !name.is_empty() && !name.contains('/'))
            .then(|| (ns.to_owned(), name.to_owned()))
    } else {
        (!rest.is_empty() && !rest.contains('/')).then(|| (String::new(), rest.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calico_layout() {
        assert_eq!(
            resource_key(Kind::IpPool, "", "default-ipv4-ippool"),
            "/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool"
        );
        assert_eq!(
            resource_key(Kind::NetworkPolicy, "prod", "knp.default.web"),
            "/calico/resources/v3/projectcalico.org/networkpolicies/prod/knp.default.web"
        );
        assert_eq!(
            list_prefix(Kind::NetworkPolicy, Some("prod")),
            "/calico/resources/v3/projectcalico.org/networkpolicies/prod/"
        );
        assert_eq!(
            list_prefix(Kind::NetworkPolicy, None),
            "/calico/resources/v3/projectcalico.org/networkpolicies/"
        );
        assert_eq!(
            list_prefix(Kind::Tier, Some("ignored")),
            "/calico/resources/v3/projectcalico.org/tiers/"
        );
    }

    #[test]
    fn keys_parse_back() {
        let key = resource_key(Kind::WorkloadEndpoint, "ns1", "node-k8s-pod-eth0");
        assert_eq!(
            parse_key(Kind::WorkloadEndpoint, &key),
            Some(("ns1".into(), "node-k8s-pod-eth0".into()))
        );
        assert_eq!(
            parse_key(Kind::Tier, &resource_key(Kind::Tier, "", "t")),
            Some((String::new(), "t".into()))
        );
        assert_eq!(
            parse_key(
                Kind::Tier,
                "/calico/resources/v3/projectcalico.org/tiers/a/b"
            ),
            None
        );
        assert_eq!(
            parse_key(Kind::IpPool, &resource_key(Kind::Tier, "", "t")),
            None
        );
    }
}
