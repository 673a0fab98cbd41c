//! The lab's edges to the machine: running `ip` (every link, address and
//! namespace the lab makes goes through it, always inside a lab
//! namespace), starting long-running processes with their output in a log
//! file, and stopping them by PID.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use calico_netlink::NetNs;
use calico_netlink::sysctl::Sysctl;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::state::Process;

/// Runs `ip ARGS...`; the error carries ip's message.
pub fn ip(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .context("running `ip` (install iproute2: scripts/setup.sh)")?;
    if !output.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `ip -n NETNS ARGS...`.
pub fn ip_in(netns: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut all = vec!["-n", netns];
    all.extend_from_slice(args);
    ip(&all)
}

/// Writes a sysctl inside a namespace (`key` as in `net/ipv4/ip_forward`),
/// through `/proc/sys` from a thread inside it.
pub fn sysctl_in(netns: &str, key: &str, value: &'static str) -> anyhow::Result<()> {
    let ns = NetNs::open(netns_path(netns)).with_context(|| format!("opening {netns}"))?;
    calico_netlink::sysctl::write_in(&ns, &[Sysctl::required(key, value)])
        .with_context(|| format!("in network namespace {netns}"))
        .map(drop)
}

/// The path `ip netns` binds a namespace at.
pub fn netns_path(netns: &str) -> std::path::PathBuf {
    Path::new("/var/run/netns").join(netns)
}

/// Whether a namespace of that name exists.
pub fn netns_exists(netns: &str) -> bool {
    netns_path(netns).exists()
}

/// Creates a namespace with its loopback up.
pub fn create_netns(netns: &str) -> anyhow::Result<()> {
    ip(&["netns", "add", netns])?;
    ip_in(netns, &["link", "set", "lo", "up"]).map(drop)
}

/// Deletes a namespace; one already gone is fine.
pub fn delete_netns(netns: &str) -> anyhow::Result<()> {
    if !netns_exists(netns) {
        return Ok(());
    }
    ip(&["netns", "del", netns]).map(drop)
}

/// Field 22 of `/proc/PID/stat`: when the process started.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it are
    // counted from its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `process` is still the process the lab started.
pub fn is_running(process: &Process) -> bool {
    let alive = start_time(process.pid) == Some(process.start_time);
    // A zombie (ended, not yet reaped) is not running.
    alive
        && std::fs::read_to_string(format!("/proc/{}/stat", process.pid))
            .map(|s| {
                s.rfind(')')
                    .and_then(|i| s[i + 2..].chars().next())
                    .is_some_and(|state| state != 'Z')
            })
            .unwrap_or(false)
}

/// Starts `command` detached from the lab (its own process group, so a
/// Ctrl-C at the lab's prompt does not reach it), output appended to
/// `log`.
pub fn spawn(mut command: Command, what: &str, log: &Path) -> anyhow::Result<Process> {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = out.try_clone().context("duplicating the log file")?;
    command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    let child = command
        .spawn()
        .with_context(|| format!("starting {what} ({:?})", command.get_program()))?;
    let pid = child.id();
    // The child outlives this process; its exit is collected by whoever
    // inherits it.
    drop(child);
    let start_time = start_time(pid).with_context(|| format!("{what} exited at once"))?;
    Ok(Process {
        pid,
        start_time,
        what: what.to_string(),
        log: log.to_path_buf(),
    })
}

/// Stops a process the lab started: SIGTERM, then SIGKILL after `grace`.
/// One that is gone (or whose PID now belongs to another process) is left
/// alone. Returns whether a signal was sent.
pub fn stop(process: &Process, grace: Duration) -> anyhow::Result<bool> {
    if !is_running(process) {
        return Ok(false);
    }
    let pid = Pid::from_raw(process.pid as i32);
    kill(pid, Signal::SIGTERM)
        .with_context(|| format!("stopping {} (pid {})", process.what, process.pid))?;
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !is_running(process) {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if is_running(process) {
        let _ = kill(pid, Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(2);
        while is_running(process) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(true)
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Finds a program: in `dir` first, then on `PATH`.
pub fn find_program(name: &str, dir: Option<&Path>) -> Option<std::path::PathBuf> {
    if let Some(dir) = dir {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(name))
        .find(|c| c.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_are_identified_by_pid_and_start_time() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sleep.log");
        let mut command = Command::new("sleep");
        command.arg("30");
        let process = spawn(command, "sleep", &log).unwrap();
        assert!(is_running(&process));
        let impostor = Process {
            start_time: process.start_time + 1,
            ..process.clone()
        };
        assert!(
            !is_running(&impostor),
            "another start time is another process"
        );
        assert!(!stop(&impostor, Duration::from_millis(100)).unwrap());
        assert!(is_running(&process), "the impostor check sent nothing");
        assert!(stop(&process, Duration::from_secs(2)).unwrap());
        // The child was not reaped here (its parent is this test process),
        // so it may linger as a zombie: not running either way.
        assert!(!is_running(&process));
        assert!(!stop(&process, Duration::from_millis(100)).unwrap());
    }

    #[test]
    fn start_time_reads_past_a_command_name_with_spaces() {
        let me = std::process::id();
        assert!(start_time(me).is_some());
        assert_eq!(start_time(u32::MAX), None);
    }
}
