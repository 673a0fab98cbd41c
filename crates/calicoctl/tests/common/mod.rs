//! Runs the real `calicoctl` binary against a datastore of the test's own:
//! an embedded one in a temporary directory, or a real etcd.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with the whole output unless the run succeeded.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "calicoctl failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Panics unless the run failed with exit code 1.
    #[track_caller]
    pub fn failed(self) -> Run {
        assert_eq!(
            self.code, 1,
            "calicoctl should have failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

/// A datastore for one test and a way to run calicoctl against it.
pub struct Ctl {
    dir: tempfile::TempDir,
    config: PathBuf,
    pub etcd: Option<calico_testutil::Etcd>,
}

impl Ctl {
    /// An embedded datastore in a fresh temporary directory.
    pub fn embedded() -> Ctl {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("calico.db");
        let config = dir.path().join("calicoctl.cfg");
        std::fs::write(
            &config,
            format!(
                "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {{}}\nspec:\n  datastoreType: embedded\n  embeddedDatastorePath: {}\n",
                db.display()
            ),
        )
        .unwrap();
        Ctl {
            dir,
            config,
            etcd: None,
        }
    }

    /// A real etcd, started for this test and stopped when it ends.
    pub fn etcd() -> Ctl {
        let etcd = calico_testutil::Etcd::start();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("calicoctl.cfg");
        std::fs::write(
            &config,
            format!(
                "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {{}}\nspec:\n  datastoreType: etcdv3\n  etcdEndpoints: {}\n",
                etcd.endpoint()
            ),
        )
        .unwrap();
        Ctl {
            dir,
            config,
            etcd: Some(etcd),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> &Path {
        &self.config
    }

    /// Writes a file in the test's directory and returns its path.
    pub fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// `calicoctl ARGS... --config <the test's config>`.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None)
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut cmd = bare();
        cmd.args(args).arg("--config").arg(&self.config);
        run(cmd, stdin)
    }
}

/// The binary with a clean environment (no datastore variables).
pub fn bare() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_calicoctl"));
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd
}

pub fn run(mut cmd: Command, stdin: Option<&str>) -> Run {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("calicoctl starts");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    Run::from(child.wait_with_output().unwrap())
}

/// The shared conformance vectors.
pub fn conformance(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}
