//! Connecting to etcd the ways Calico users do: TLS with client
//! certificates, user name and password, configuration from the
//! environment or a calicoctl file; and failing clearly when it cannot.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use calico_datastore::config::{EtcdConfig, PemSource};
use calico_datastore::{AnyBackend, Backend, DatastoreConfig, Error, EtcdBackend, display_chain};
use calico_testutil::{Etcd, TestCerts, free_port};

fn tls_config(etcd: &Etcd, certs: &TestCerts) -> EtcdConfig {
    let mut config = EtcdConfig::new([etcd.endpoint()]);
    config.ca_cert = Some(PemSource::File(certs.ca_cert()));
    config.cert = Some(PemSource::File(certs.client_cert()));
    config.key = Some(PemSource::File(certs.client_key()));
    config
}

async fn start_tls() -> (TestCerts, Etcd) {
    tokio::task::spawn_blocking(|| {
        let certs = TestCerts::generate();
        let etcd = Etcd::start_tls(&certs);
        (certs, etcd)
    })
    .await
    .unwrap()
}

async fn start_plain() -> Etcd {
    tokio::task::spawn_blocking(Etcd::start).await.unwrap()
}

/// Connects expecting failure; returns the error and how long it took.
async fn connect_err(config: &EtcdConfig) -> (Error, Duration) {
    let start = Instant::now();
    let result = EtcdBackend::connect(config).await;
    let elapsed = start.elapsed();
    match result {
        Ok(b) => panic!("connected unexpectedly: {b:?}"),
        Err(e) => {
            eprintln!("connect failed after {elapsed:?}: {}", display_chain(&e));
            (e, elapsed)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_ca_and_client_certificate() {
    let (certs, etcd) = start_tls().await;
    let backend = EtcdBackend::connect(&tls_config(&etcd, &certs))
        .await
        .unwrap_or_else(|e| panic!("{}", display_chain(&e)));
    let created = backend.create("/calico/tls", b"secure").await.unwrap();
    let mut watch = backend
        .watch("/calico/", created.mod_revision - 1)
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), watch.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(event.key(), "/calico/tls");
    // etcdctl with the same certificates sees what we wrote.
    let out = etcd.etcdctl_ok(&["get", "/calico/tls", "--print-value-only"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "secure");

    // A bare host:port gets https when certificates are configured.
    let mut bare = tls_config(&etcd, &certs);
    bare.endpoints = vec![etcd.endpoint().trim_start_matches("https://").to_owned()];
    let backend = EtcdBackend::connect(&bare)
        .await
        .unwrap_or_else(|e| panic!("{}", display_chain(&e)));
    assert_eq!(
        backend.get("/calico/tls").await.unwrap().unwrap().value,
        b"secure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_client_certificate_fails_clearly() {
    let (certs, etcd) = start_tls().await;
    let mut config = tls_config(&etcd, &certs);
    config.cert = None;
    config.key = None;
    let (error, elapsed) = connect_err(&config).await;
    let message = display_chain(&error);
    assert!(
        elapsed < Duration::from_secs(5),
        "took {elapsed:?}: {message}"
    );
    assert!(
        matches!(error, Error::Unavailable { .. } | Error::Auth { .. }),
        "{message}"
    );
    assert!(message.contains(etcd.endpoint()), "{message}");
    assert!(
        message.contains("requires a client certificate"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_wrong_ca_fails_clearly() {
    let (certs, etcd) = start_tls().await;
    let mut config = tls_config(&etcd, &certs);
    config.ca_cert = Some(PemSource::File(certs.other_ca_cert()));
    let (error, elapsed) = connect_err(&config).await;
    let message = display_chain(&error);
    assert!(
        elapsed < Duration::from_secs(5),
        "took {elapsed:?}: {message}"
    );
    assert!(message.contains(etcd.endpoint()), "{message}");
    assert!(
        message.contains("not signed by the configured CA"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_client_against_tls_server_fails_clearly() {
    let (_certs, etcd) = start_tls().await;
    let endpoint = etcd.endpoint().replace("https://", "http://");
    let (error, elapsed) = connect_err(&EtcdConfig::new([endpoint.clone()])).await;
    let message = display_chain(&error);
    assert!(
        elapsed < Duration::from_secs(5),
        "took {elapsed:?}: {message}"
    );
    assert!(message.contains(&endpoint), "{message}");
    assert!(message.contains("expects TLS"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_certificate_file_is_named() {
    let (certs, etcd) = start_tls().await;
    let mut config = tls_config(&etcd, &certs);
    let missing = certs.dir().join("no-such-key.pem");
    config.key = Some(PemSource::File(missing.clone()));
    let (error, _) = connect_err(&config).await;
    match &error {
        Error::Tls { file, what, .. } => {
            assert_eq!(file, &missing.display().to_string());
            assert_eq!(*what, "client key");
        }
        other => panic!("expected a TLS file error, got {other:?}"),
    }
    assert!(
        display_chain(&error).contains("No such file"),
        "{}",
        display_chain(&error)
    );

    // A file that is not PEM is refused before any connection is tried.
    config.key = Some(PemSource::File(certs.dir().to_path_buf()));
    let (error, _) = connect_err(&config).await;
    assert!(matches!(error, Error::Tls { .. }), "{error:?}");
    let garbage = certs.dir().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    config.key = Some(PemSource::File(certs.client_key()));
    config.ca_cert = Some(PemSource::File(garbage.clone()));
    let (error, _) = connect_err(&config).await;
    let message = display_chain(&error);
    assert!(
        message.contains("garbage.pem") && message.contains("no PEM certificate"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_fails_within_five_seconds() {
    // Nothing listens on a fresh free port.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let (error, elapsed) = connect_err(&EtcdConfig::new([endpoint.clone()])).await;
    let message = display_chain(&error);
    assert!(
        elapsed < Duration::from_secs(5),
        "took {elapsed:?}: {message}"
    );
    assert!(matches!(error, Error::Unavailable { .. }), "{message}");
    assert!(message.contains(&endpoint), "{message}");
    assert!(message.contains("refused"), "{message}");
    assert!(error.is_transient());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_unreachable_endpoint_is_reported() {
    let first = format!("http://127.0.0.1:{}", free_port());
    let second = format!("127.0.0.1:{}", free_port());
    let (error, elapsed) = connect_err(&EtcdConfig::new([first.clone(), second.clone()])).await;
    let message = display_chain(&error);
    assert!(
        elapsed < Duration::from_secs(5),
        "took {elapsed:?}: {message}"
    );
    assert!(
        message.contains(&first) && message.contains(&second),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_times_out() {
    // A listener that accepts TCP but never speaks: the connection hangs
    // unless bounded.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (error, elapsed) = connect_err(&EtcdConfig::new([endpoint.clone()])).await;
    let message = display_chain(&error);
    assert!(
        elapsed < Duration::from_secs(5),
        "took {elapsed:?}: {message}"
    );
    assert!(message.contains(&endpoint), "{message}");
    assert!(message.contains("no etcd answer"), "{message}");
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_name_and_password() {
    let etcd = start_plain().await;
    etcd.enable_auth("rootpw");
    let mut config = EtcdConfig::new([etcd.endpoint()]);
    config.username = Some("root".into());
    config.password = Some(calico_datastore::config::Secret::new("rootpw"));
    let backend = EtcdBackend::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("{}", display_chain(&e)));
    backend.put("/calico/authenticated", b"yes").await.unwrap();
    assert!(!format!("{backend:?}").contains("rootpw"));

    config.password = Some(calico_datastore::config::Secret::new("wrong"));
    let (error, _) = connect_err(&config).await;
    let message = display_chain(&error);
    assert!(matches!(error, Error::Auth { .. }), "{message}");
    assert!(message.contains("user root"), "{message}");
    assert!(!message.contains("wrong"), "password in message: {message}");

    // Without credentials the cluster refuses reads.
    let (error, _) = connect_err(&EtcdConfig::new([etcd.endpoint()])).await;
    assert!(
        matches!(error, Error::Auth { .. }),
        "{}",
        display_chain(&error)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_from_calico_environment_variables() {
    let (certs, etcd) = start_tls().await;
    let vars: HashMap<&str, String> = [
        ("DATASTORE_TYPE", "etcdv3".to_owned()),
        ("ETCD_ENDPOINTS", etcd.endpoint().to_owned()),
        ("ETCD_CA_CERT_FILE", certs.ca_cert().display().to_string()),
        ("ETCD_CERT_FILE", certs.client_cert().display().to_string()),
        ("ETCD_KEY_FILE", certs.client_key().display().to_string()),
    ]
    .into_iter()
    .collect();
    let config = DatastoreConfig::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let backend = calico_datastore::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("{}", display_chain(&e)));
    assert!(matches!(backend, AnyBackend::Etcd(_)));
    assert_eq!(backend.target(), etcd.endpoint());
    backend.create("/calico/from-env", b"1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_from_a_calicoctl_file_with_inline_certificates() {
    let (certs, etcd) = start_tls().await;
    let indent = |path: std::path::PathBuf| {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    let yaml = format!(
        "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {{}}\nspec:\n  datastoreType: etcdv3\n  \
         etcdEndpoints: {}\n  etcdCACert: |\n{}  etcdCert: |\n{}  etcdKey: |\n{}",
        etcd.endpoint(),
        indent(certs.ca_cert()),
        indent(certs.client_cert()),
        indent(certs.client_key()),
    );
    let file = certs.dir().join("calicoctl.cfg");
    std::fs::write(&file, yaml).unwrap();
    let config = DatastoreConfig::load(Some(&file)).unwrap();
    assert!(!format!("{config:?}").contains("PRIVATE KEY"));
    let backend = calico_datastore::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("{}", display_chain(&e)));
    backend.put("/calico/from-file", b"1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_values_are_stored_verbatim_for_calico() {
    let etcd = start_plain().await;
    let key = "/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool";
    let json = r#"{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"default-ipv4-ippool","uid":"4d2c","creationTimestamp":"2024-01-01T00:00:00Z"},"spec":{"cidr":"192.168.0.0/16","ipipMode":"Always","natOutgoing":true,"blockSize":26,"nodeSelector":"all()"}}"#;
    // Written by another etcd client (as Calico would have), read by us.
    etcd.etcdctl_ok(&["put", key, json]);
    let backend = EtcdBackend::connect(&EtcdConfig::new([etcd.endpoint()]))
        .await
        .unwrap();
    let kv = backend.get(key).await.unwrap().unwrap();
    assert_eq!(kv.value, json.as_bytes());
    let listing = backend
        .list("/calico/resources/v3/projectcalico.org/ippools/")
        .await
        .unwrap();
    assert_eq!(listing.kvs, vec![kv.clone()]);

    // Written by us, read by etcdctl byte for byte.
    let block = "/calico/ipam/v2/assignment/ipv4/block/192.168.0.0-26";
    let value = r#"{"cidr":"192.168.0.0/26","affinity":"host:node-1","allocations":[0,null],"unallocated":[1],"attributes":[{"handle_id":"ipip-tunnel-addr-node-1","secondary":{"node":"node-1","type":"ipipTunnelAddress"}}]}"#;
    backend.create(block, value.as_bytes()).await.unwrap();
    let out = etcd.etcdctl_ok(&["get", block, "--print-value-only"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end_matches('\n'),
        value
    );

    // etcdctl's revisions agree with ours.
    let out = etcd.etcdctl_ok(&["get", key, "-w", "json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("\"mod_revision\":{}", kv.mod_revision)),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_reports_the_server_going_away() {
    let etcd = start_plain().await;
    let backend = EtcdBackend::connect(&EtcdConfig::new([etcd.endpoint()]))
        .await
        .unwrap();
    let revision = backend.revision().await.unwrap();
    let mut watch = backend.watch("/calico/", revision).await.unwrap();
    drop(etcd);
    match tokio::time::timeout(Duration::from_secs(60), watch.recv()).await {
        Ok(Some(Err(error))) => {
            assert!(error.is_transient(), "{}", display_chain(&error));
        }
        other => panic!("watch after the server died gave {other:?}"),
    }
    assert!(watch.recv().await.is_none());
    // And a request reports the datastore, not a hang.
    let start = Instant::now();
    let error = backend.get("/calico/x").await.unwrap_err();
    assert!(error.is_transient(), "{}", display_chain(&error));
    assert!(start.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_larger_than_a_page_are_complete_and_consistent() {
    let etcd = start_plain().await;
    let backend = EtcdBackend::connect(&EtcdConfig::new([etcd.endpoint()]))
        .await
        .unwrap()
        .with_list_page(3);
    for i in (0..10).rev() {
        backend
            .create(&format!("/calico/paged/{i:02}"), i.to_string().as_bytes())
            .await
            .unwrap();
    }
    backend.create("/calico/pagedx", b"outside").await.unwrap();
    let revision = backend.revision().await.unwrap();
    let listing = backend.list("/calico/paged/").await.unwrap();
    let keys: Vec<String> = listing.kvs.iter().map(|kv| kv.key.clone()).collect();
    let expected: Vec<String> = (0..10).map(|i| format!("/calico/paged/{i:02}")).collect();
    assert_eq!(keys, expected);
    assert_eq!(listing.revision, revision);
    assert_eq!(listing.kvs[7].value, b"7");
    assert_eq!(backend.list("").await.unwrap().kvs.len(), 11);
}
