use std::collections::HashMap;

use super::*;

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

fn etcd(config: DatastoreConfig) -> EtcdConfig {
    match config {
        DatastoreConfig::Etcd(etcd) => etcd,
        other => panic!("expected etcd, got {other:?}"),
    }
}

#[test]
fn empty_environment_means_embedded_at_the_default_path() {
    let config = DatastoreConfig::from_lookup(env(&[])).unwrap();
    assert_eq!(
        config,
        DatastoreConfig::Embedded(EmbeddedConfig {
            path: PathBuf::from(DEFAULT_EMBEDDED_PATH)
        })
    );
}

#[test]
fn embedded_path_from_the_environment() {
    let config = DatastoreConfig::from_lookup(env(&[
        ("DATASTORE_TYPE", "embedded"),
        ("EMBEDDED_DATASTORE_PATH", "/tmp/x/calico.db"),
    ]))
    .unwrap();
    assert_eq!(
        config,
        DatastoreConfig::Embedded(EmbeddedConfig {
            path: "/tmp/x/calico.db".into()
        })
    );
}

#[test]
fn endpoints_alone_select_etcd_and_are_split_and_trimmed() {
    let config = etcd(
        DatastoreConfig::from_lookup(env(&[(
            "ETCD_ENDPOINTS",
            "https://10.0.0.1:2379, https://10.0.0.2:2379,,",
        )]))
        .unwrap(),
    );
    assert_eq!(
        config.endpoints,
        ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
    );
    assert_eq!(config.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    assert!(!config.has_tls());
}

#[test]
fn calico_prefixed_variables_win() {
    let config = etcd(
        DatastoreConfig::from_lookup(env(&[
            ("ETCD_ENDPOINTS", "http://plain:2379"),
            ("CALICO_ETCD_ENDPOINTS", "http://prefixed:2379"),
            ("DATASTORE_TYPE", "embedded"),
            ("CALICO_DATASTORE_TYPE", "etcdv3"),
        ]))
        .unwrap(),
    );
    assert_eq!(config.endpoints, ["http://prefixed:2379"]);
}

#[test]
fn tls_files_and_credentials_from_the_environment() {
    let config = etcd(
        DatastoreConfig::from_lookup(env(&[
            ("DATASTORE_TYPE", "etcdv3"),
            ("ETCD_ENDPOINTS", "https://etcd:2379"),
            ("ETCD_CA_CERT_FILE", "/calico-secrets/etcd-ca"),
            ("ETCD_CERT_FILE", "/calico-secrets/etcd-cert"),
            ("ETCD_KEY_FILE", "/calico-secrets/etcd-key"),
            ("ETCD_USERNAME", "calico"),
            ("ETCD_PASSWORD", "hunter2"),
        ]))
        .unwrap(),
    );
    assert_eq!(
        config.ca_cert,
        Some(PemSource::File("/calico-secrets/etcd-ca".into()))
    );
    assert_eq!(
        config.cert,
        Some(PemSource::File("/calico-secrets/etcd-cert".into()))
    );
    assert_eq!(
        config.key,
        Some(PemSource::File("/calico-secrets/etcd-key".into()))
    );
    assert_eq!(config.username.as_deref(), Some("calico"));
    assert_eq!(
        config.password.as_ref().map(Secret::expose),
        Some("hunter2")
    );
}

#[test]
fn empty_tls_variables_count_as_unset() {
    // Calico's manifests set the file variables to "" when etcd has no TLS.
    let config = etcd(
        DatastoreConfig::from_lookup(env(&[
            ("ETCD_ENDPOINTS", "http://etcd:2379"),
            ("ETCD_CA_CERT_FILE", ""),
            ("ETCD_CERT_FILE", ""),
            ("ETCD_KEY_FILE", " "),
        ]))
        .unwrap(),
    );
    assert!(!config.has_tls());
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let config = DatastoreConfig::from_yaml(
        "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  etcdEndpoints: https://e:2379\n  \
         etcdUsername: calico\n  etcdPassword: s3cr3t-pass\n  etcdCACert: CA-PEM-TEXT\n  etcdCert: CERT-PEM-TEXT\n  \
         etcdKey: KEY-PEM-TEXT\n",
        "test",
    )
    .unwrap();
    let debug = format!("{config:?} {config:#?}");
    for secret in ["s3cr3t-pass", "KEY-PEM-TEXT", "CERT-PEM-TEXT"] {
        assert!(!debug.contains(secret), "{secret} leaked: {debug}");
    }
    assert!(debug.contains("<redacted>"));
    assert!(!config.describe().contains("s3cr3t"));
    assert_eq!(
        config.describe(),
        "etcdv3 at https://e:2379 with TLS as user calico"
    );
}

#[test]
fn only_one_credential_means_no_authentication() {
    let config = etcd(
        DatastoreConfig::from_lookup(env(&[
            ("ETCD_ENDPOINTS", "http://e:2379"),
            ("ETCD_USERNAME", "calico"),
        ]))
        .unwrap(),
    );
    assert_eq!((config.username, config.password), (None, None));
}

#[test]
fn environment_errors_name_the_variable() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("DATASTORE_TYPE", "kubernetes")],
            "datastore type 'kubernetes' (DATASTORE_TYPE) is not supported yet",
        ),
        (
            &[("DATASTORE_TYPE", "etcd")],
            "unknown datastore type 'etcd' (DATASTORE_TYPE)",
        ),
        (
            &[("DATASTORE_TYPE", "etcdv3")],
            "no etcd endpoints are set (ETCD_ENDPOINTS)",
        ),
        (
            &[
                ("ETCD_ENDPOINTS", "http://e:2379"),
                ("ETCD_DISCOVERY_SRV", "example.com"),
            ],
            "SRV discovery (ETCD_DISCOVERY_SRV) is not supported",
        ),
        (
            &[
                ("ETCD_ENDPOINTS", "https://e:2379"),
                ("ETCD_CERT_FILE", "/c"),
            ],
            "ETCD_CERT_FILE is set but ETCD_KEY_FILE is not",
        ),
        (
            &[
                ("ETCD_ENDPOINTS", "https://e:2379"),
                ("ETCD_KEY_FILE", "/k"),
            ],
            "ETCD_KEY_FILE is set but ETCD_CERT_FILE is not",
        ),
        (
            &[("ETCD_ENDPOINTS", "https://e")],
            "invalid etcd endpoint \"https://e\" in environment: expected host:port",
        ),
        (
            &[("ETCD_ENDPOINTS", "e:notaport")],
            "the port is not a number",
        ),
        (
            &[("ETCD_ENDPOINTS", "unix://sock:1")],
            "only http:// and https://",
        ),
    ];
    for (vars, expected) in cases {
        let error = DatastoreConfig::from_lookup(env(vars))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(expected),
            "{vars:?}: {error:?} lacks {expected:?}"
        );
        assert!(
            error.starts_with("environment") || error.contains("in environment"),
            "{error}"
        );
    }
}

const FULL_FILE: &str = "\
apiVersion: projectcalico.org/v3
kind: CalicoAPIConfig
metadata:
  name: config
spec:
  datastoreType: etcdv3
  etcdEndpoints: https://10.0.0.1:2379,https://10.0.0.2:2379
  etcdCACertFile: /etc/calico/ca.pem
  etcdCertFile: /etc/calico/cert.pem
  etcdKeyFile: /etc/calico/key.pem
  etcdUsername: calico
  etcdPassword: pw
  kubeconfig: /root/.kube/config
  k8sInsecureSkipTLSVerify: false
";

#[test]
fn reads_a_calicoctl_config_file() {
    let config = etcd(DatastoreConfig::from_yaml(FULL_FILE, "calicoctl.cfg").unwrap());
    assert_eq!(
        config.endpoints,
        ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
    );
    assert_eq!(
        config.ca_cert,
        Some(PemSource::File("/etc/calico/ca.pem".into()))
    );
    assert_eq!(
        config.cert,
        Some(PemSource::File("/etc/calico/cert.pem".into()))
    );
    assert_eq!(
        config.key,
        Some(PemSource::File("/etc/calico/key.pem".into()))
    );
    assert_eq!(config.username.as_deref(), Some("calico"));
}

#[test]
fn reads_json_and_the_embedded_path() {
    let config = DatastoreConfig::from_yaml(
        r#"{"apiVersion": "projectcalico.org/v3", "kind": "CalicoAPIConfig",
            "spec": {"datastoreType": "embedded", "embeddedDatastorePath": "/srv/calico.db"}}"#,
        "cfg.json",
    )
    .unwrap();
    assert_eq!(
        config,
        DatastoreConfig::Embedded(EmbeddedConfig {
            path: "/srv/calico.db".into()
        })
    );
}

#[test]
fn inline_certificates_in_the_file() {
    let config = etcd(
        DatastoreConfig::from_yaml(
            "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  etcdEndpoints: https://e:2379\n  \
             etcdCACert: CA\n  etcdCert: CERT\n  etcdKey: KEY\n",
            "f",
        )
        .unwrap(),
    );
    assert!(
        matches!(&config.ca_cert, Some(PemSource::Inline { field: "etcdCACert", pem }) if pem.expose() == "CA")
    );
    assert!(
        matches!(&config.key, Some(PemSource::Inline { field: "etcdKey", pem }) if pem.expose() == "KEY")
    );
    assert_eq!(config.key.as_ref().unwrap().describe(), "inline etcdKey");
}

#[test]
fn file_errors_name_the_file_and_what_is_wrong() {
    let header = "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\n";
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{header}spec:\n  datastoreType: etcdv3\n  etcdEndpoint: http://e:2379\n"),
            "syntax error in calicoctl.cfg at line 5 (field spec.etcdEndpoint)",
        ),
        (
            "apiVersion: projectcalico.org/v1\nkind: CalicoAPIConfig\n".into(),
            "unknown apiVersion 'projectcalico.org/v1'",
        ),
        (
            "apiVersion: projectcalico.org/v3\nkind: Config\n".into(),
            "expected kind 'CalicoAPIConfig', got 'Config'",
        ),
        (
            format!(
                "{header}spec:\n  etcdEndpoints: https://e:2379\n  etcdCACert: CA\n  etcdCertFile: /c\n"
            ),
            "cannot mix inline certificates",
        ),
        (
            format!("{header}spec:\n  datastoreType: kubernetes\n"),
            "(spec.datastoreType) is not supported yet",
        ),
        (
            format!("{header}spec:\n  datastoreType: etcdv3\n"),
            "no etcd endpoints are set (spec.etcdEndpoints)",
        ),
        (
            format!("{header}spec: [1, 2]\n"),
            "syntax error in calicoctl.cfg",
        ),
    ];
    for (text, expected) in cases {
        let error = DatastoreConfig::from_yaml(&text, "calicoctl.cfg")
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        assert!(
            error.contains("calicoctl.cfg"),
            "{error:?} does not name the file"
        );
    }
}

#[test]
fn unknown_field_error_keeps_the_parser_cause() {
    let error = DatastoreConfig::from_yaml(
        "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  etcdEndpoint: x\n",
        "f",
    )
    .unwrap_err();
    let chain = crate::display_chain(&error);
    assert!(chain.contains("unknown field `etcdEndpoint`"), "{chain}");
}

#[test]
fn load_follows_calicoctl_rules() {
    let dir = tempfile::tempdir().unwrap();
    let default = dir.path().join("calicoctl.cfg");
    let explicit = dir.path().join("other.cfg");
    let vars = env(&[("ETCD_ENDPOINTS", "http://from-env:2379")]);

    // No file anywhere: the environment.
    let config = etcd(load_from(None, &default, &vars).unwrap());
    assert_eq!(config.endpoints, ["http://from-env:2379"]);

    // An explicit file that does not exist is an error naming it.
    let error = load_from(Some(&explicit), &default, &vars).unwrap_err();
    assert!(
        matches!(&error, ConfigError::Missing { path } if *path == explicit),
        "{error}"
    );
    // ... unless it is the default path, which falls back to the environment.
    assert!(load_from(Some(&default), &default, &vars).is_ok());

    // The default file, when present, replaces the environment entirely.
    std::fs::write(
        &default,
        "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  datastoreType: embedded\n",
    )
    .unwrap();
    assert!(matches!(
        load_from(None, &default, &vars).unwrap(),
        DatastoreConfig::Embedded(_)
    ));

    std::fs::write(&explicit, FULL_FILE).unwrap();
    let config = etcd(load_from(Some(&explicit), &default, &vars).unwrap());
    assert_eq!(config.endpoints[0], "https://10.0.0.1:2379");
}

#[test]
fn unreadable_file_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let error = DatastoreConfig::from_file(dir.path()).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }));
    assert!(
        error
            .to_string()
            .contains(&dir.path().display().to_string())
    );
}
