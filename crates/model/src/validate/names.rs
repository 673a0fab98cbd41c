//! Name formats: Kubernetes' DNS-1123 labels and subdomains, qualified
//! label keys, label values, port names, and Calico's policy-name forms.

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && is_label_shape(s)
}

fn is_label_shape(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Labels joined by dots, at most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label_shape)
}

/// `label` or `label.label`: Calico's GlobalNetworkPolicy names.
pub(crate) fn is_global_network_policy_name(s: &str) -> bool {
    match s.split_once('.') {
        None => is_label_shape(s),
        Some((a, b)) => is_label_shape(a) && is_label_shape(b),
    }
}

/// GlobalNetworkPolicy names, or `knp.default.<subdomain>` /
/// `ossg.default.<subdomain>`: Calico's NetworkPolicy names.
pub(crate) fn is_network_policy_name(s: &str) -> bool {
    if is_global_network_policy_name(s) {
        return true;
    }
    ["knp.default.", "ossg.default."]
        .iter()
        .any(|p| s.strip_prefix(p).is_some_and(is_dns1123_subdomain))
}

fn check_name_part(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("name part must be non-empty".into());
    }
    if s.len() > 63 {
        return Err("name part must be no more than 63 characters".into());
    }
    let b = s.as_bytes();
    let inner_ok = b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if !inner_ok || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return Err("must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character".into());
    }
    Ok(())
}

/// A label or annotation key: `[prefix/]name` (Kubernetes' qualified name).
pub(crate) fn check_qualified_name(s: &str) -> Result<(), String> {
    let parts: Vec<&str> = s.split('/').collect();
    match parts.as_slice() {
        [name] => check_name_part(name),
        [prefix, name] => {
            if prefix.is_empty() {
                return Err("prefix part must be non-empty".into());
            }
            if !is_dns1123_subdomain(prefix) {
                return Err("prefix part must be a lowercase DNS-1123 subdomain".into());
            }
            check_name_part(name)
        }
        _ => Err("a qualified name has at most one '/'".into()),
    }
}

pub fn is_qualified_name(s: &str) -> bool {
    check_qualified_name(s).is_ok()
}

/// A label value: empty, or a name part.
pub(crate) fn check_label_value(s: &str) -> Result<(), String> {
    if s.is_empty() {
        Ok(())
    } else {
        check_name_part(s)
    }
}

pub fn is_label_value(s: &str) -> bool {
    check_label_value(s).is_ok()
}

/// Kubernetes' port name (IANA service name): 1-15 of `[a-z0-9-]`, at least
/// one letter, no leading, trailing or doubled '-'.
pub fn is_k8s_port_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=15).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.iter().any(|c| c.is_ascii_lowercase())
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !s.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_formats() {
        let cases: &[(&str, bool, bool, bool, bool)] = &[
            // name, label, subdomain, gnp, np
            ("abc", true, true, true, true),
            ("a-b.c", false, true, true, true),
            ("a.b.c", false, true, false, false),
            ("knp.default.a.b.c", false, true, false, true),
            ("ossg.default.x", false, true, false, true),
            ("Abc", false, false, false, false),
            ("-a", false, false, false, false),
            ("a_b", false, false, false, false),
            ("", false, false, false, false),
        ];
        for (s, label, sub, gnp, np) in cases {
            assert_eq!(is_dns1123_label(s), *label, "label {s}");
            assert_eq!(is_dns1123_subdomain(s), *sub, "subdomain {s}");
            assert_eq!(is_global_network_policy_name(s), *gnp, "gnp {s}");
            assert_eq!(is_network_policy_name(s), *np, "np {s}");
        }
        assert!(!is_dns1123_label(&"a".repeat(64)));
    }

    #[test]
    fn label_keys_and_values() {
        let keys: &[(&str, bool)] = &[
            ("app", true),
            ("App_1.x", true),
            ("projectcalico.org/tier", true),
            ("Example.com/x", false),
            ("/x", false),
            ("a/b/c", false),
            ("-x", false),
            ("", false),
        ];
        for (k, ok) in keys {
            assert_eq!(is_qualified_name(k), *ok, "{k}");
        }
        assert!(is_label_value(""));
        assert!(is_label_value("v1.2_3"));
        assert!(!is_label_value("a b"));
        assert!(!is_label_value(&"a".repeat(64)));
    }

    #[test]
    fn port_names() {
        for (s, ok) in [
            ("http", true),
            ("h2c-80", true),
            ("80", false),
            ("a--b", false),
            ("HTTP", false),
            ("averyveryverylongname", false),
        ] {
            assert_eq!(is_k8s_port_name(s), ok, "{s}");
        }
    }
}
