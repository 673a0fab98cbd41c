//! Which datastore to use and how to reach it, read the way Calico reads it.
//!
//! Two sources, as in calicoctl:
//! - a config file (`/etc/calico/calicoctl.cfg` by default), YAML or JSON:
//!   `apiVersion: projectcalico.org/v3`, `kind: CalicoAPIConfig`,
//!   `spec: {datastoreType, etcdEndpoints, etcdCACertFile, etcdCertFile,
//!   etcdKeyFile, etcdUsername, etcdPassword, etcdCACert, etcdCert, etcdKey,
//!   embeddedDatastorePath}`; unknown fields are errors;
//! - environment variables `DATASTORE_TYPE`, `ETCD_ENDPOINTS` (comma
//!   separated), `ETCD_CA_CERT_FILE`, `ETCD_CERT_FILE`, `ETCD_KEY_FILE`,
//!   `ETCD_USERNAME`, `ETCD_PASSWORD`, `EMBEDDED_DATASTORE_PATH`, each also
//!   accepted with a `CALICO_` prefix, which wins.
//!
//! The file, when it is used, is the whole configuration: environment
//! variables are not merged into it (calicoctl behaves the same). See
//! [`DatastoreConfig::load`] for when the file is used.
//!
//! When no datastore type is given, the type is `etcdv3` if etcd endpoints
//! are set and `embedded` otherwise (Calico would pick `kubernetes`, which is
//! not supported yet). Empty values count as unset. As in Calico, a user
//! name and password are only used when both are set.
//!
//! Secrets (the etcd password, inline keys) are wrapped in [`Secret`], which
//! never prints its contents.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Where calicoctl looks for its config file.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/calico/calicoctl.cfg";

/// Where the embedded datastore lives unless configured otherwise.
pub const DEFAULT_EMBEDDED_PATH: &str = "/var/lib/calico/calico.db";

/// The connect timeout used unless set otherwise: a datastore that cannot be
/// reached is reported within this time.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one etcd request may take (Calico's etcd client uses 10 s).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The chosen datastore and its connection details.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatastoreConfig {
    Embedded(EmbeddedConfig),
    Etcd(EtcdConfig),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedConfig {
    /// The SQLite file shared by every process on the machine.
    pub path: PathBuf,
}

/// How to reach an etcd v3 cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `https://host:port` or `http://host:port`; without a scheme, https is
    /// used when TLS is configured.
    pub endpoints: Vec<String>,
    /// The CA that signed the servers' certificates. Without it, the
    /// system's trusted roots are used.
    pub ca_cert: Option<PemSource>,
    /// The client certificate and its key, for clusters that require one.
    pub cert: Option<PemSource>,
    pub key: Option<PemSource>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl EtcdConfig {
    /// Plain connection details for `endpoints`, default timeouts.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> EtcdConfig {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            ca_cert: None,
            cert: None,
            key: None,
            username: None,
            password: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Whether any certificate or key is configured.
    pub fn has_tls(&self) -> bool {
        self.ca_cert.is_some() || self.cert.is_some() || self.key.is_some()
    }
}

/// A PEM certificate or key: a file path, or the PEM text itself (Calico's
/// inline `etcdCACert`/`etcdCert`/`etcdKey` config fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemSource {
    File(PathBuf),
    Inline {
        /// The config field it came from, for error messages.
        field: &'static str,
        pem: Secret,
    },
}

impl PemSource {
    /// A name for error messages: the path, or the config field.
    pub fn describe(&self) -> String {
        match self {
            PemSource::File(path) => path.display().to_string(),
            PemSource::Inline { field, .. } => format!("inline {field}"),
        }
    }
}

/// A string that must not appear in logs: `Debug` and `Display` print
/// `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for handing to the datastore client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A configuration that cannot be used, naming the file or variable at
/// fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("config file {path} does not exist")]
    Missing { path: PathBuf },

    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("syntax error in {origin}{}{}", line.map(|l| format!(" at line {l}")).unwrap_or_default(), if field.is_empty() || field == "." { String::new() } else { format!(" (field {field})") })]
    Syntax {
        origin: String,
        line: Option<usize>,
        /// Dotted path to the offending field, e.g. `spec.etcdEndpoints`.
        field: String,
        #[source]
        source: serde_yaml_ng::Error,
    },

    #[error(
        "invalid config file {origin}: unknown apiVersion '{found}' (expected 'projectcalico.org/v3')"
    )]
    ApiVersion { origin: String, found: String },

    #[error("invalid config file {origin}: expected kind 'CalicoAPIConfig', got '{found}'")]
    Kind { origin: String, found: String },

    #[error(
        "{origin}: datastore type '{value}' ({field}) is not supported yet; use 'etcdv3' or 'embedded'"
    )]
    UnsupportedDatastore {
        origin: String,
        field: &'static str,
        value: String,
    },

    #[error(
        "{origin}: unknown datastore type '{value}' ({field}); expected 'etcdv3' or 'embedded'"
    )]
    UnknownDatastore {
        origin: String,
        field: &'static str,
        value: String,
    },

    #[error("{origin}: the datastore type is etcdv3 but no etcd endpoints are set ({field})")]
    NoEtcdEndpoints { origin: String, field: &'static str },

    #[error(
        "{origin}: etcd SRV discovery ({field}) is not supported; list the endpoints in {endpoints_field}"
    )]
    DiscoverySrv {
        origin: String,
        field: &'static str,
        endpoints_field: &'static str,
    },

    #[error(
        "{origin}: cannot mix inline certificates and keys (etcdCACert, etcdCert, etcdKey) with certificate and key files"
    )]
    MixedTlsSources { origin: String },

    #[error(
        "{origin}: {present} is set but {missing} is not; a client certificate needs its key and the other way round"
    )]
    IncompleteClientCert {
        origin: String,
        present: &'static str,
        missing: &'static str,
    },

    #[error("invalid etcd endpoint {endpoint:?} in {origin}: {reason}")]
    Endpoint {
        origin: String,
        endpoint: String,
        reason: &'static str,
    },
}

/// Names of the settings in one source, for error messages.
struct Fields {
    datastore_type: &'static str,
    endpoints: &'static str,
    discovery_srv: &'static str,
    cert: &'static str,
    key: &'static str,
}

const ENV_FIELDS: Fields = Fields {
    datastore_type: "DATASTORE_TYPE",
    endpoints: "ETCD_ENDPOINTS",
    discovery_srv: "ETCD_DISCOVERY_SRV",
    cert: "ETCD_CERT_FILE",
    key: "ETCD_KEY_FILE",
};

const FILE_FIELDS: Fields = Fields {
    datastore_type: "spec.datastoreType",
    endpoints: "spec.etcdEndpoints",
    discovery_srv: "spec.etcdDiscoverySrv",
    cert: "spec.etcdCertFile/etcdCert",
    key: "spec.etcdKeyFile/etcdKey",
};

/// The settings of either source before they are checked and defaulted;
/// empty strings already turned into `None`.
#[derive(Default)]
struct Raw {
    datastore_type: Option<String>,
    endpoints: Option<String>,
    discovery_srv: Option<String>,
    ca_cert_file: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    ca_cert: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    username: Option<String>,
    password: Option<String>,
    embedded_path: Option<String>,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

impl DatastoreConfig {
    /// Reads the configuration the way calicoctl does: from `config_file`
    /// if it exists; when it is `None` (meaning [`DEFAULT_CONFIG_FILE`]) and
    /// that file does not exist, from the environment. A file named
    /// explicitly must exist.
    pub fn load(config_file: Option<&Path>) -> Result<DatastoreConfig, ConfigError> {
        DatastoreConfig::load_with(config_file, |name| std::env::var(name).ok())
    }

    /// [`DatastoreConfig::load`] with environment variables read through
    /// `lookup`.
    pub fn load_with(
        config_file: Option<&Path>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<DatastoreConfig, ConfigError> {
        load_from(config_file, Path::new(DEFAULT_CONFIG_FILE), lookup)
    }

    /// Reads the process environment (see the module documentation).
    pub fn from_env() -> Result<DatastoreConfig, ConfigError> {
        DatastoreConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads environment-style variables through `lookup`: for each setting
    /// `X`, `CALICO_X` if set, else `X`.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<DatastoreConfig, ConfigError> {
        let var = |name: &str| {
            non_empty(lookup(&format!("CALICO_{name}"))).or_else(|| non_empty(lookup(name)))
        };
        let raw = Raw {
            datastore_type: var("DATASTORE_TYPE"),
            endpoints: var("ETCD_ENDPOINTS"),
            discovery_srv: var("ETCD_DISCOVERY_SRV"),
            ca_cert_file: var("ETCD_CA_CERT_FILE"),
            cert_file: var("ETCD_CERT_FILE"),
            key_file: var("ETCD_KEY_FILE"),
            username: var("ETCD_USERNAME"),
            password: var("ETCD_PASSWORD"),
            embedded_path: var("EMBEDDED_DATASTORE_PATH"),
            // Inline certificates come only from files, as in Calico, so
            // keys never sit in the environment.
            ca_cert: None,
            cert: None,
            key: None,
        };
        raw.resolve("environment", &ENV_FIELDS)
    }

    /// Reads a calicoctl config file.
    pub fn from_file(path: &Path) -> Result<DatastoreConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        DatastoreConfig::from_yaml(&text, &path.display().to_string())
    }

    /// Parses the text of a calicoctl config file; `origin` names it in
    /// errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<DatastoreConfig, ConfigError> {
        let file: ApiConfigFile = serde_path_to_error::deserialize(
            serde_yaml_ng::Deserializer::from_str(text),
        )
        .map_err(|e| {
            let field = e.path().to_string();
            let source = e.into_inner();
            ConfigError::Syntax {
                origin: origin.to_owned(),
                line: source.location().map(|l| l.line()),
                field,
                source,
            }
        })?;
        if file.api_version != "projectcalico.org/v3" {
            return Err(ConfigError::ApiVersion {
                origin: origin.to_owned(),
                found: file.api_version,
            });
        }
        if file.kind != "CalicoAPIConfig" {
            return Err(ConfigError::Kind {
                origin: origin.to_owned(),
                found: file.kind,
            });
        }
        let spec = file.spec;
        let raw = Raw {
            datastore_type: non_empty(spec.datastore_type),
            endpoints: non_empty(spec.etcd_endpoints),
            discovery_srv: non_empty(spec.etcd_discovery_srv),
            ca_cert_file: non_empty(spec.etcd_ca_cert_file),
            cert_file: non_empty(spec.etcd_cert_file),
            key_file: non_empty(spec.etcd_key_file),
            ca_cert: non_empty(spec.etcd_ca_cert),
            cert: non_empty(spec.etcd_cert),
            key: non_empty(spec.etcd_key),
            username: non_empty(spec.etcd_username),
            password: non_empty(spec.etcd_password),
            embedded_path: non_empty(spec.embedded_datastore_path),
        };
        raw.resolve(origin, &FILE_FIELDS)
    }

    /// A one-line description safe for logs (no secrets).
    pub fn describe(&self) -> String {
        match self {
            DatastoreConfig::Embedded(e) => format!("embedded datastore at {}", e.path.display()),
            DatastoreConfig::Etcd(e) => {
                let mut text = format!("etcdv3 at {}", e.endpoints.join(","));
                if e.has_tls() {
                    text.push_str(" with TLS");
                }
                if let Some(user) = &e.username {
                    text.push_str(&format!(" as user {user}"));
                }
                text
            }
        }
    }
}

/// calicoctl's rule: an explicit file must exist; the default file is used
/// if it exists, the environment otherwise.
fn load_from(
    config_file: Option<&Path>,
    default_file: &Path,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<DatastoreConfig, ConfigError> {
    // Naming the default file explicitly is the same as not naming it.
    let config_file = config_file.filter(|path| *path != default_file);
    match config_file {
        Some(path) if !path.exists() => Err(ConfigError::Missing {
            path: path.to_path_buf(),
        }),
        Some(path) => DatastoreConfig::from_file(path),
        None if default_file.exists() => DatastoreConfig::from_file(default_file),
        None => DatastoreConfig::from_lookup(lookup),
    }
}

impl Raw {
    fn resolve(self, origin: &str, fields: &Fields) -> Result<DatastoreConfig, ConfigError> {
        let origin_owned = || origin.to_owned();
        if self.discovery_srv.is_some() {
            return Err(ConfigError::DiscoverySrv {
                origin: origin_owned(),
                field: fields.discovery_srv,
                endpoints_field: fields.endpoints,
            });
        }
        let kind = match self.datastore_type.as_deref() {
            None if self.endpoints.is_some() => "etcdv3",
            None => "embedded",
            Some(kind @ ("etcdv3" | "embedded")) => kind,
            Some(value @ "kubernetes") => {
                return Err(ConfigError::UnsupportedDatastore {
                    origin: origin_owned(),
                    field: fields.datastore_type,
                    value: value.to_owned(),
                });
            }
            Some(value) => {
                return Err(ConfigError::UnknownDatastore {
                    origin: origin_owned(),
                    field: fields.datastore_type,
                    value: value.to_owned(),
                });
            }
        };
        if kind == "embedded" {
            return Ok(DatastoreConfig::Embedded(EmbeddedConfig {
                path: PathBuf::from(
                    self.embedded_path
                        .unwrap_or_else(|| DEFAULT_EMBEDDED_PATH.to_owned()),
                ),
            }));
        }

        let endpoints: Vec<String> = self
            .endpoints
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
        if endpoints.is_empty() {
            return Err(ConfigError::NoEtcdEndpoints {
                origin: origin_owned(),
                field: fields.endpoints,
            });
        }
        for endpoint in &endpoints {
            check_endpoint(endpoint).map_err(|reason| ConfigError::Endpoint {
                origin: origin_owned(),
                endpoint: endpoint.clone(),
                reason,
            })?;
        }

        let have_inline = self.ca_cert.is_some() || self.cert.is_some() || self.key.is_some();
        let have_files =
            self.ca_cert_file.is_some() || self.cert_file.is_some() || self.key_file.is_some();
        if have_inline && have_files {
            return Err(ConfigError::MixedTlsSources {
                origin: origin_owned(),
            });
        }
        let file = |p: Option<String>| p.map(|p| PemSource::File(PathBuf::from(p)));
        let inline = |field: &'static str, p: Option<String>| {
            p.map(|pem| PemSource::Inline {
                field,
                pem: Secret(pem),
            })
        };
        let (ca_cert, cert, key) = if have_inline {
            (
                inline("etcdCACert", self.ca_cert),
                inline("etcdCert", self.cert),
                inline("etcdKey", self.key),
            )
        } else {
            (
                file(self.ca_cert_file),
                file(self.cert_file),
                file(self.key_file),
            )
        };
        match (&cert, &key) {
            (Some(_), None) => {
                return Err(ConfigError::IncompleteClientCert {
                    origin: origin_owned(),
                    present: fields.cert,
                    missing: fields.key,
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::IncompleteClientCert {
                    origin: origin_owned(),
                    present: fields.key,
                    missing: fields.cert,
                });
            }
            _ => {}
        }

        // Calico plumbs credentials through only when both are set.
        let (username, password) = match (self.username, self.password) {
            (Some(user), Some(password)) => (Some(user), Some(Secret(password))),
            (Some(_), None) | (None, Some(_)) => {
                tracing::warn!(
                    origin,
                    "only one of the etcd user name and password is set; connecting without authentication"
                );
                (None, None)
            }
            (None, None) => (None, None),
        };

        Ok(DatastoreConfig::Etcd(EtcdConfig {
            endpoints,
            ca_cert,
            cert,
            key,
            username,
            password,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }))
    }
}

/// Accepts `[http://|https://]host:port` (IPv6 hosts in brackets).
fn check_endpoint(endpoint: &str) -> Result<(), &'static str> {
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .unwrap_or(endpoint);
    if rest.contains("://") {
        return Err("only http:// and https:// endpoints are supported");
    }
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').ok_or("expected host:port")?;
    if host.is_empty() {
        return Err("the host is empty");
    }
    if rest.contains('/') {
        return Err("an endpoint has no path; expected host:port");
    }
    port.parse::<u16>()
        .map_err(|_| "the port is not a number from 1 to 65535")?;
    Ok(())
}

/// The calicoctl config file, as Calico's `CalicoAPIConfig`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ApiConfigFile {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    spec: ApiConfigSpec,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
// The Kubernetes datastore settings are accepted so that existing Calico
// config files parse; they matter only for the `kubernetes` type.
#[allow(dead_code)]
struct ApiConfigSpec {
    datastore_type: Option<String>,
    etcd_endpoints: Option<String>,
    etcd_discovery_srv: Option<String>,
    etcd_username: Option<String>,
    etcd_password: Option<String>,
    etcd_key_file: Option<String>,
    etcd_cert_file: Option<String>,
    #[serde(rename = "etcdCACertFile")]
    etcd_ca_cert_file: Option<String>,
    etcd_key: Option<String>,
    etcd_cert: Option<String>,
    #[serde(rename = "etcdCACert")]
    etcd_ca_cert: Option<String>,
    embedded_datastore_path: Option<String>,
    kubeconfig: Option<serde_yaml_ng::Value>,
    #[serde(rename = "k8sAPIEndpoint")]
    k8s_api_endpoint: Option<serde_yaml_ng::Value>,
    k8s_key_file: Option<serde_yaml_ng::Value>,
    k8s_cert_file: Option<serde_yaml_ng::Value>,
    #[serde(rename = "k8sCAFile")]
    k8s_ca_file: Option<serde_yaml_ng::Value>,
    #[serde(rename = "k8sAPIToken")]
    k8s_api_token: Option<serde_yaml_ng::Value>,
    #[serde(rename = "k8sInsecureSkipTLSVerify")]
    k8s_insecure_skip_tls_verify: Option<serde_yaml_ng::Value>,
    k8s_disable_node_poll: Option<serde_yaml_ng::Value>,
    #[serde(rename = "usePodCIDR")]
    use_pod_cidr: Option<serde_yaml_ng::Value>,
    kubeconfig_inline: Option<serde_yaml_ng::Value>,
    #[serde(rename = "k8sClientQPS")]
    k8s_client_qps: Option<serde_yaml_ng::Value>,
    k8s_client_burst: Option<serde_yaml_ng::Value>,
    k8s_current_context: Option<serde_yaml_ng::Value>,
    #[serde(rename = "calicoAPIGroup")]
    calico_api_group: Option<serde_yaml_ng::Value>,
}

#[cfg(test)]
mod tests;
