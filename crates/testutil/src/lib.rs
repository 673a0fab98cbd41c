//! Test harnesses shared by every calico-rs crate's tests.
//!
//! Owns: starting real peers (today: the `etcd` server) on free loopback
//! ports, generating throw-away TLS certificates, and small helpers for unique
//! names and free ports. Every process started here is stopped by its PID when
//! its handle is dropped, and every temporary directory is removed.
//!
//! Must not: be a dependency of anything but tests and benchmarks; skip a
//! test silently. When a peer's binary is missing, the helper panics with a
//! message telling the reader to run `scripts/setup.sh`.
//!
//! Start at [`Etcd::start`], [`TestCerts::generate`], [`free_port`] and
//! [`unique_name`].

mod certs;
mod etcd;
mod names;

pub use certs::TestCerts;
pub use etcd::Etcd;
pub use names::{free_port, unique_name};

/// Finds `binary` on `PATH`, or panics with a message naming the Debian
/// package that provides it and the script that installs it.
pub fn require_binary(binary: &str, package: &str) -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(binary);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{binary}` was not found on PATH; this test needs the Debian package `{package}`: \
         run scripts/setup.sh (as root) to install it"
    );
}

#[cfg(test)]
mod tests {
    #[test]
    #[should_panic(expected = "run scripts/setup.sh")]
    fn a_missing_peer_binary_fails_the_test_with_the_fix() {
        crate::require_binary("calico-no-such-binary", "calico-no-such-package");
    }

    #[test]
    fn finds_binaries_on_path() {
        assert!(crate::require_binary("sh", "dash").is_file());
    }
}
