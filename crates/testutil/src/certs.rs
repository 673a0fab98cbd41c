//! Throw-away PKI for TLS tests: one CA, a server certificate for loopback,
//! and a client certificate, written as PEM files into a temporary directory.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

/// A CA plus a server and a client certificate signed by it, as PEM files.
///
/// The server certificate is valid for `127.0.0.1`, `::1` and `localhost`.
/// A second, unrelated CA (`other_ca`) lets tests prove that a peer signed by
/// the wrong authority is refused. The directory is removed on drop.
#[derive(Debug)]
pub struct TestCerts {
    dir: TempDir,
}

impl TestCerts {
    /// Generates the certificates (ECDSA P-256) and writes them to a new
    /// temporary directory.
    pub fn generate() -> TestCerts {
        let dir = tempfile::Builder::new()
            .prefix("calico-test-certs-")
            .tempdir()
            .unwrap_or_else(|e| {
                panic!("cannot create a temporary directory for certificates: {e}")
            });

        let (ca_pem, ca_issuer) = certificate_authority("calico-rs test CA");
        let (other_ca_pem, _) = certificate_authority("calico-rs unrelated CA");

        let server = leaf(
            &ca_issuer,
            "etcd-server",
            &["127.0.0.1", "::1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client = leaf(
            &ca_issuer,
            "calico-client",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        );

        let certs = TestCerts { dir };
        certs.write("ca.pem", &ca_pem);
        certs.write("other-ca.pem", &other_ca_pem);
        certs.write("server.pem", &server.0);
        certs.write("server-key.pem", &server.1);
        certs.write("client.pem", &client.0);
        certs.write("client-key.pem", &client.1);
        certs
    }

    fn write(&self, name: &str, contents: &str) {
        let path = self.dir.path().join(name);
        fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// The directory holding every file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate that signed the server and client certificates.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A CA certificate that signed nothing here.
    pub fn other_ca_cert(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("server-key.pem")
    }

    pub fn client_cert(&self) -> PathBuf {
        self.dir.path().join("client.pem")
    }

    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client-key.pem")
    }
}

fn certificate_authority(common_name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap_or_else(|e| panic!("cannot generate a CA key: {e}"));
    let mut params = CertificateParams::new(Vec::<String>::new())
        .unwrap_or_else(|e| panic!("invalid CA parameters: {e}"));
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params
        .self_signed(&key)
        .unwrap_or_else(|e| panic!("cannot self-sign the CA certificate: {e}"));
    (cert.pem(), Issuer::new(params, key))
}

/// Returns (certificate PEM, private key PEM).
fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    common_name: &str,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = KeyPair::generate()
        .unwrap_or_else(|e| panic!("cannot generate a key for {common_name}: {e}"));
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names)
        .unwrap_or_else(|e| panic!("invalid parameters for {common_name}: {e}"));
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, issuer)
        .unwrap_or_else(|e| panic!("cannot sign the certificate for {common_name}: {e}"));
    (cert.pem(), key.serialize_pem())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_pem_file() {
        let certs = TestCerts::generate();
        for (path, marker) in [
            (certs.ca_cert(), "BEGIN CERTIFICATE"),
            (certs.other_ca_cert(), "BEGIN CERTIFICATE"),
            (certs.server_cert(), "BEGIN CERTIFICATE"),
            (certs.client_cert(), "BEGIN CERTIFICATE"),
            (certs.server_key(), "PRIVATE KEY"),
            (certs.client_key(), "PRIVATE KEY"),
        ] {
            let text = fs::read_to_string(&path).unwrap();
            assert!(text.contains(marker), "{} lacks {marker}", path.display());
        }
        assert_ne!(
            fs::read_to_string(certs.ca_cert()).unwrap(),
            fs::read_to_string(certs.other_ca_cert()).unwrap()
        );
        let dir = certs.dir().to_path_buf();
        drop(certs);
        assert!(!dir.exists(), "{} not removed on drop", dir.display());
    }
}
