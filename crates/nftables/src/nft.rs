//! Running the `nft` program: listing a table as JSON and applying a
//! script in one transaction.
//!
//! The [`Nft`] trait is what the reconciler needs from the kernel side;
//! [`NftCli`] implements it with `std::process` (blocking, for a dedicated
//! thread or `spawn_blocking`), [`NftLib`] with nft's library in process
//! (the same input and output without a process per transaction), and,
//! with the `tokio` feature, `TokioNft` with `tokio::process`. Tests can
//! implement it with a fake.

use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use calico_netlink::NetNs;
use calico_netlink::libnftables::{self, Nftables};

use crate::model::TableId;

/// One error nft reported: where in the script and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based script line, if nft gave a position.
    pub line: Option<usize>,
    /// 1-based first and last column of the offending text.
    pub columns: Option<(usize, usize)>,
    pub message: String,
}

/// Parses nft's error output: lines like
/// `/dev/stdin:12:30-41: Error: Could not process rule: No such file or directory`
/// (each followed by the offending line and a marker line, which are skipped).
pub fn parse_diagnostics(stderr: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for line in stderr.lines() {
        let Some((location, message)) = line
            .split_once(": Error: ")
            .or_else(|| line.strip_prefix("Error: ").map(|m| ("", m)))
        else {
            continue;
        };
        let mut parts = location.rsplitn(3, ':');
        let columns = parts.next().and_then(|c| {
            let (a, b) = c.split_once('-')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        });
        let line_no = parts.next().and_then(|l| l.parse().ok());
        out.push(Diagnostic {
            line: line_no.filter(|_| columns.is_some()),
            columns: columns.filter(|_| line_no.is_some()),
            message: message.trim().to_string(),
        });
    }
    out
}

/// Running nft failed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("cannot run `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {}", stderr.trim())]
    Failed {
        command: String,
        status: String,
        stderr: String,
        diagnostics: Vec<Diagnostic>,
    },
    #[error("`{command}`")]
    Library {
        command: String,
        #[source]
        source: libnftables::Error,
    },
    #[cfg(feature = "tokio")]
    #[error("the blocking task running `{command}` was lost")]
    Join { command: String },
}

/// What the reconciler needs from nft. Methods return futures so one
/// reconciler serves both blocking and async callers; [`NftCli`]'s futures
/// do their work when first polled and never wait on anything else.
pub trait Nft {
    /// `nft -n -j list table FAMILY NAME`; `None` if the table does not exist.
    fn list_table(
        &self,
        table: &TableId,
    ) -> impl Future<Output = Result<Option<String>, NftError>> + Send;

    /// `nft -f -` with `script` on standard input: all of it or nothing.
    fn apply(&self, script: &str) -> impl Future<Output = Result<(), NftError>> + Send;
}

/// An nft that does its work on the calling thread: it is an [`Nft`]
/// whose futures are ready when first polled, so the reconciler's
/// blocking entry points (`apply_blocking` and the rest) can drive it from
/// a plain thread.
pub trait BlockingNft {
    /// Lists `table` (`nft -n -j list table`); `None` if it does not exist.
    fn list_table_blocking(&self, table: &TableId) -> Result<Option<String>, NftError>;

    /// Applies `script` in one transaction (`nft -f`).
    fn apply_blocking(&self, script: &str) -> Result<(), NftError>;
}

impl<T: BlockingNft> Nft for T {
    fn list_table(
        &self,
        table: &TableId,
    ) -> impl Future<Output = Result<Option<String>, NftError>> + Send {
        let result = self.list_table_blocking(table);
        async move { result }
    }

    fn apply(&self, script: &str) -> impl Future<Output = Result<(), NftError>> + Send {
        let result = self.apply_blocking(script);
        async move { result }
    }
}

/// How to start nft: the program and the arguments before nft's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftCommand {
    argv: Vec<OsString>,
}

impl Default for NftCommand {
    fn default() -> Self {
        NftCommand {
            argv: vec!["nft".into()],
        }
    }
}

impl NftCommand {
    /// `nft` from `PATH`.
    pub fn new() -> NftCommand {
        NftCommand::default()
    }

    /// Any command line that ends up running nft, e.g.
    /// `["ip", "netns", "exec", "ns1", "nft"]`.
    pub fn with_argv<I, S>(argv: I) -> NftCommand
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        NftCommand {
            argv: argv.into_iter().map(Into::into).collect(),
        }
    }

    /// nft inside the network namespace bound at `netns` (for example
    /// `/var/run/netns/NAME`), entered by `nsenter` for the child process
    /// only: the calling thread never changes namespace.
    pub fn in_netns(netns: impl AsRef<Path>) -> NftCommand {
        let mut net = OsString::from("--net=");
        net.push(netns.as_ref());
        NftCommand::with_argv([OsString::from("nsenter"), net, OsString::from("nft")])
    }

    pub(crate) fn command_line(&self, args: &[&str]) -> (OsString, Vec<OsString>, String) {
        let mut argv = self
            .argv
            .iter()
            .cloned()
            .chain(args.iter().map(OsString::from));
        let program = argv.next().unwrap_or_else(|| "nft".into());
        let rest: Vec<OsString> = argv.collect();
        let shown = std::iter::once(program.as_os_str())
            .chain(rest.iter().map(OsString::as_os_str))
            .map(OsStr::to_string_lossy)
            .collect::<Vec<_>>()
            .join(" ");
        (program, rest, shown)
    }

    pub(crate) fn list_args(table: &TableId) -> [&str; 5] {
        ["-n", "-j", "list", "table", table.family.nft_name()]
    }
}

/// Interprets the output of a `list table` run.
pub(crate) fn list_result(command: String, output: Output) -> Result<Option<String>, NftError> {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    listed(
        command,
        output.status.success(),
        output.status.to_string(),
        stdout,
        stderr,
    )
}

fn listed(
    command: String,
    success: bool,
    status: String,
    stdout: String,
    stderr: String,
) -> Result<Option<String>, NftError> {
    if success {
        return Ok(Some(stdout));
    }
    let diagnostics = parse_diagnostics(&stderr);
    // ENOENT for the table named on the command line is "no such table".
    if diagnostics
        .first()
        .is_some_and(|d| d.message.starts_with("No such file or directory"))
    {
        return Ok(None);
    }
    Err(NftError::Failed {
        command,
        status,
        stderr,
        diagnostics,
    })
}

pub(crate) fn apply_result(command: String, output: Output) -> Result<(), NftError> {
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    Err(NftError::Failed {
        command,
        status: output.status.to_string(),
        diagnostics: parse_diagnostics(&stderr),
        stderr,
    })
}

/// nft as a blocking child process.
#[derive(Debug, Clone, Default)]
pub struct NftCli {
    command: NftCommand,
}

impl NftCli {
    pub fn new(command: NftCommand) -> NftCli {
        NftCli { command }
    }
}

impl BlockingNft for NftCli {
    fn list_table_blocking(&self, table: &TableId) -> Result<Option<String>, NftError> {
        let mut args: Vec<&str> = NftCommand::list_args(table).to_vec();
        args.push(&table.name);
        let (program, rest, shown) = self.command.command_line(&args);
        let output = Command::new(program)
            .args(rest)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| NftError::Spawn {
                command: shown.clone(),
                source,
            })?;
        list_result(shown, output)
    }

    fn apply_blocking(&self, script: &str) -> Result<(), NftError> {
        let (program, rest, shown) = self.command.command_line(&["-f", "-"]);
        let spawn_error = |source| NftError::Spawn {
            command: shown.clone(),
            source,
        };
        let mut child = Command::new(program)
            .args(rest)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        // nft reads the whole script before it writes anything, so writing
        // first and then collecting the output cannot deadlock.
        let write = child
            .stdin
            .take()
            .map(|mut stdin| stdin.write_all(script.as_bytes()));
        let output = child.wait_with_output().map_err(spawn_error)?;
        match write {
            // A write error with a failed nft is reported as nft's failure.
            Some(Err(source)) if output.status.success() => Err(spawn_error(source)),
            _ => apply_result(shown, output),
        }
    }
}

/// nft's library in process ([`calico_netlink::libnftables`]): what
/// [`NftCli`] does, the same script in and JSON out with the same
/// diagnostics, without starting a process for each transaction. Blocking.
#[derive(Debug)]
pub struct NftLib {
    nft: Nftables,
}

/// How errors name the library's runs.
const LIB_APPLY: &str = "libnftables: nft -f";

impl NftLib {
    /// A context in `netns` (the calling thread's namespace when `None`).
    pub fn open(netns: Option<&NetNs>) -> Result<NftLib, libnftables::Error> {
        let nft = match netns {
            Some(ns) => Nftables::open_in(ns)?,
            None => Nftables::open()?,
        };
        Ok(NftLib { nft })
    }
}

impl BlockingNft for NftLib {
    fn list_table_blocking(&self, table: &TableId) -> Result<Option<String>, NftError> {
        let command = format!("list table {} {}", table.family.nft_name(), table.name);
        let shown = format!("libnftables: nft -n -j {command}");
        match self.nft.run(&command, libnftables::Output::NumericJson) {
            Ok(Ok(out)) => Ok(Some(out)),
            Ok(Err(failure)) => listed(
                shown,
                false,
                format!("status {}", failure.status),
                String::new(),
                failure.stderr,
            ),
            Err(source) => Err(NftError::Library {
                command: shown,
                source,
            }),
        }
    }

    fn apply_blocking(&self, script: &str) -> Result<(), NftError> {
        match self.nft.run(script, libnftables::Output::Text) {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(failure)) => Err(NftError::Failed {
                command: LIB_APPLY.into(),
                status: format!("status {}", failure.status),
                diagnostics: parse_diagnostics(&failure.stderr),
                stderr: failure.stderr,
            }),
            Err(source) => Err(NftError::Library {
                command: LIB_APPLY.into(),
                source,
            }),
        }
    }
}

/// Scripts up to this size go through the library; larger ones (a
/// whole table at start-up, a change touching most of it) through the
/// program. nft's memory for a transaction grows with the script, and in
/// process it would stay with the agent: the heap keeps its high-water
/// mark.
pub const LIBRARY_MAX_SCRIPT: usize = 256 * 1024;

/// What the node agent drives: the library for the small transactions
/// that make up steady-state updates, where a process start would be most
/// of the cost, and the program for large ones and for listings (a listing
/// holds the whole table in nft's memory; it runs on the repair timer,
/// where a process start does not matter). Without the library, the
/// program for everything.
#[derive(Debug)]
pub struct NftDriver {
    library: Option<NftLib>,
    program: NftCli,
}

impl NftDriver {
    /// The drivers for `netns` (the calling thread's namespace when
    /// `None`), and why the library cannot be used if it cannot.
    pub fn open(netns: Option<&NetNs>) -> (NftDriver, Option<libnftables::Error>) {
        let command = match netns {
            Some(ns) => NftCommand::in_netns(ns.path()),
            None => NftCommand::new(),
        };
        let (library, error) = match NftLib::open(netns) {
            Ok(lib) => (Some(lib), None),
            Err(e) => (None, Some(e)),
        };
        let driver = NftDriver {
            library,
            program: NftCli::new(command),
        };
        (driver, error)
    }
}

impl BlockingNft for NftDriver {
    fn list_table_blocking(&self, table: &TableId) -> Result<Option<String>, NftError> {
        self.program.list_table_blocking(table)
    }

    fn apply_blocking(&self, script: &str) -> Result<(), NftError> {
        match &self.library {
            Some(lib) if script.len() <= LIBRARY_MAX_SCRIPT => lib.apply_blocking(script),
            _ => self.program.apply_blocking(script),
        }
    }
}

#[cfg(feature = "tokio")]
pub use self::tokio_nft::TokioNft;

#[cfg(feature = "tokio")]
mod tokio_nft {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// nft as a child process driven by tokio, for callers inside a runtime.
    #[derive(Debug, Clone, Default)]
    pub struct TokioNft {
        command: NftCommand,
    }

    impl TokioNft {
        pub fn new(command: NftCommand) -> TokioNft {
            TokioNft { command }
        }
    }

    impl Nft for TokioNft {
        fn list_table(
            &self,
            table: &TableId,
        ) -> impl Future<Output = Result<Option<String>, NftError>> + Send {
            let mut args: Vec<&str> = NftCommand::list_args(table).to_vec();
            args.push(&table.name);
            let (program, rest, shown) = self.command.command_line(&args);
            async move {
                let output = tokio::process::Command::new(program)
                    .args(rest)
                    .stdin(Stdio::null())
                    .output()
                    .await
                    .map_err(|source| NftError::Spawn {
                        command: shown.clone(),
                        source,
                    })?;
                list_result(shown, output)
            }
        }

        fn apply(&self, script: &str) -> impl Future<Output = Result<(), NftError>> + Send {
            let (program, rest, shown) = self.command.command_line(&["-f", "-"]);
            let script = script.to_owned();
            async move {
                let spawn_error = |source| NftError::Spawn {
                    command: shown.clone(),
                    source,
                };
                let mut child = tokio::process::Command::new(program)
                    .args(rest)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(spawn_error)?;
                let write = match child.stdin.take() {
                    Some(mut stdin) => {
                        let result = stdin.write_all(script.as_bytes()).await;
                        drop(stdin);
                        Some(result)
                    }
                    None => None,
                };
                let output = child.wait_with_output().await.map_err(spawn_error)?;
                match write {
                    Some(Err(source)) if output.status.success() => Err(spawn_error(source)),
                    _ => apply_result(shown, output),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostics_carry_line_columns_and_message() {
        let stderr = "/dev/stdin:34:1-46: Error: Could not process rule: Too many links\n\
                      add rule inet calico cali-tw-x goto cali-tw-x\n\
                      ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n\
                      /dev/stdin:2:28-38: Error: element does not exist\n\
                      delete element inet t3 s { 10.1.0.0/24 }\n\
                      \x20                          ^^^^^^^^^^^\n\
                      Error: No such file or directory\n";
        assert_eq!(
            parse_diagnostics(stderr),
            vec![
                Diagnostic {
                    line: Some(34),
                    columns: Some((1, 46)),
                    message: "Could not process rule: Too many links".into()
                },
                Diagnostic {
                    line: Some(2),
                    columns: Some((28, 38)),
                    message: "element does not exist".into()
                },
                Diagnostic {
                    line: None,
                    columns: None,
                    message: "No such file or directory".into()
                },
            ]
        );
    }

    #[test]
    fn command_line_is_prefix_then_nft_arguments() {
        let cmd = NftCommand::in_netns("/var/run/netns/x");
        let (program, rest, shown) = cmd.command_line(&["-f", "-"]);
        assert_eq!(program, "nsenter");
        assert_eq!(rest, vec!["--net=/var/run/netns/x", "nft", "-f", "-"]);
        assert_eq!(shown, "nsenter --net=/var/run/netns/x nft -f -");
    }
}
