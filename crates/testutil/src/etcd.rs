//! A real `etcd` server (Debian's etcd-server, v3 API) for one test.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{TestCerts, free_port, require_binary};

/// How long a fresh etcd may take to become ready. It normally takes about a
/// second; the margin is for a loaded two-core machine.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The line etcd logs once its client listener accepts requests.
const READY_LINE: &str = "ready to serve client requests";

/// A single-member etcd cluster listening on loopback, with its own data
/// directory. Killed (by PID) and its directory removed on drop.
#[derive(Debug)]
pub struct Etcd {
    child: Child,
    endpoint: String,
    client_port: u16,
    tls: Option<ClientTls>,
    // Dropped after the child is killed (see Drop).
    dir: TempDir,
}

#[derive(Debug, Clone)]
struct ClientTls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Etcd {
    /// Starts etcd serving plain HTTP on a free loopback port and waits until
    /// it accepts client requests.
    ///
    /// Panics (telling the reader to run `scripts/setup.sh`) when the `etcd`
    /// binary is missing, and with etcd's log when it fails to start.
    pub fn start() -> Etcd {
        Etcd::start_with(None)
    }

    /// Starts etcd serving HTTPS with `certs.server_cert()`, requiring clients
    /// to present a certificate signed by `certs.ca_cert()`. Keep `certs`
    /// alive as long as the server: etcd reads the files again for new
    /// connections.
    pub fn start_tls(certs: &TestCerts) -> Etcd {
        Etcd::start_with(Some(certs))
    }

    fn start_with(certs: Option<&TestCerts>) -> Etcd {
        let binary = require_binary("etcd", "etcd-server");
        // A port can be taken by someone else between free_port() and etcd's
        // bind; try again with new ports when that happens.
        let mut last_failure = String::new();
        for _ in 0..3 {
            match Etcd::try_start(&binary, certs) {
                Ok(etcd) => return etcd,
                Err(failure) if failure.contains("address already in use") => {
                    last_failure = failure
                }
                Err(failure) => panic!("{failure}"),
            }
        }
        panic!("{last_failure}");
    }

    fn try_start(binary: &Path, certs: Option<&TestCerts>) -> Result<Etcd, String> {
        let dir = tempfile::Builder::new()
            .prefix("calico-test-etcd-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory for etcd: {e}"))?;
        let client_port = free_port();
        let peer_port = free_port();
        let scheme = if certs.is_some() { "https" } else { "http" };
        let endpoint = format!("{scheme}://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log_path = dir.path().join("etcd.log");
        let log = fs::File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot duplicate the handle of {}: {e}", log_path.display()))?;

        let mut command = Command::new(binary);
        command
            .arg("--name")
            .arg("test")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--listen-client-urls")
            .arg(&endpoint)
            .arg("--advertise-client-urls")
            .arg(&endpoint)
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(format!("test={peer}"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let tls = certs.map(|certs| {
            command
                .arg("--cert-file")
                .arg(certs.server_cert())
                .arg("--key-file")
                .arg(certs.server_key())
                .arg("--trusted-ca-file")
                .arg(certs.ca_cert())
                .arg("--client-cert-auth");
            ClientTls {
                ca: certs.ca_cert(),
                cert: certs.client_cert(),
                key: certs.client_key(),
            }
        });
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut etcd = Etcd {
            child,
            endpoint,
            client_port,
            tls,
            dir,
        };
        etcd.wait_ready(&log_path)?;
        Ok(etcd)
    }

    fn wait_ready(&mut self, log_path: &Path) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "etcd for {} exited during start-up ({status}); its log:\n{}",
                    self.endpoint,
                    fs::read_to_string(log_path).unwrap_or_default()
                ));
            }
            let logged_ready = fs::read_to_string(log_path)
                .map(|text| text.contains(READY_LINE))
                .unwrap_or(false);
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.client_port));
            if logged_ready && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "etcd for {} was not ready after {READY_TIMEOUT:?}; its log:\n{}",
                    self.endpoint,
                    fs::read_to_string(log_path).unwrap_or_default()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The client URL, `http://127.0.0.1:PORT` (or `https://` for TLS).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The etcd server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// etcd's log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    /// An `etcdctl` command (v3 API) aimed at this server, with the client
    /// certificate when it serves TLS. Add the subcommand and run it.
    pub fn etcdctl(&self) -> Command {
        let binary = require_binary("etcdctl", "etcd-client");
        let mut command = Command::new(binary);
        command
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint));
        if let Some(tls) = &self.tls {
            command
                .arg(format!("--cacert={}", tls.ca.display()))
                .arg(format!("--cert={}", tls.cert.display()))
                .arg(format!("--key={}", tls.key.display()));
        }
        command
    }

    /// Runs `etcdctl ARGS...` and panics with its output if it fails.
    pub fn etcdctl_ok(&self, args: &[&str]) -> Output {
        let output = self
            .etcdctl()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run etcdctl {args:?}: {e}"));
        if !output.status.success() {
            panic!(
                "etcdctl {args:?} against {} failed ({}): {}{}",
                self.endpoint,
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        output
    }

    /// Turns on etcd authentication with a `root` user holding `root_password`
    /// (what Calico's ETCD_USERNAME/ETCD_PASSWORD log in as). After this,
    /// clients must log in.
    pub fn enable_auth(&self, root_password: &str) {
        self.etcdctl_ok(&["user", "add", &format!("root:{root_password}")]);
        self.etcdctl_ok(&["user", "grant-role", "root", "root"]);
        self.etcdctl_ok(&["auth", "enable"]);
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // Kill by PID (the Child handle), then reap it so no zombie is left;
        // the data directory goes when `dir` drops after this.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid_alive(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
            && !fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.split_whitespace().nth(2) == Some("Z"))
                .unwrap_or(true)
    }

    #[test]
    fn etcd_serves_and_is_stopped_on_drop() {
        let etcd = Etcd::start();
        assert!(etcd.endpoint().starts_with("http://127.0.0.1:"));
        etcd.etcdctl_ok(&["put", "/calico/test", "value"]);
        let got = etcd.etcdctl_ok(&["get", "/calico/test", "--print-value-only"]);
        assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "value");
        let pid = etcd.pid();
        let dir = etcd.dir.path().to_path_buf();
        assert!(pid_alive(pid));
        drop(etcd);
        assert!(!pid_alive(pid), "etcd pid {pid} still running after drop");
        assert!(!dir.exists(), "{} not removed", dir.display());
    }

    #[test]
    fn tls_etcd_requires_the_client_certificate() {
        let certs = TestCerts::generate();
        let etcd = Etcd::start_tls(&certs);
        assert!(etcd.endpoint().starts_with("https://127.0.0.1:"));
        etcd.etcdctl_ok(&["put", "k", "v"]);
        // Without the client certificate the server refuses.
        let refused = Command::new(require_binary("etcdctl", "etcd-client"))
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", etcd.endpoint()))
            .arg(format!("--cacert={}", certs.ca_cert().display()))
            .arg("--dial-timeout=2s")
            .args(["get", "k"])
            .output()
            .unwrap();
        assert!(
            !refused.status.success(),
            "etcd answered a client without a certificate"
        );
    }
}
