//! `calico-lab down`: stops every process the lab started (by PID,
//! checked against its start time), deletes every namespace it made (and
//! with them every link, address, route and nftables table inside), and
//! removes its files. Best effort and idempotent: every step is tried,
//! failures are reported together, and a lab that is already gone is
//! success.

use std::path::Path;
use std::time::Duration;

use anyhow::bail;

use crate::state::State;
use crate::system;

/// Takes down the lab in `dir`.
pub fn down(dir: &Path) -> anyhow::Result<()> {
    let Some(state) = State::load(dir)? else {
        println!("no lab is up in {}", dir.display());
        return Ok(());
    };
    let mut failures = Vec::new();
    let mut stopped = 0;
    for process in state.processes() {
        match system::stop(process, Duration::from_secs(5)) {
            Ok(true) => stopped += 1,
            Ok(false) => {}
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    let mut deleted = 0;
    for netns in state.namespaces.iter().rev() {
        if !system::netns_exists(netns) {
            continue;
        }
        match system::delete_netns(netns) {
            Ok(()) => deleted += 1,
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    for path in state.files.iter().rev() {
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
        match removed {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                failures.push(format!("removing {}: {e}", path.display()));
            }
            _ => {}
        }
    }
    if !failures.is_empty() {
        // Keep the state so that another `down` can finish the job.
        bail!(
            "taking down lab {} left {} problem(s):\n  {}",
            state.id,
            failures.len(),
            failures.join("\n  ")
        );
    }
    for leftover in [
        State::path(dir),
        State::path(dir).with_extension("json.tmp"),
    ] {
        let _ = std::fs::remove_file(leftover);
    }
    if state.created_dir {
        // Only if empty: anything else in it is not ours.
        let _ = std::fs::remove_dir(dir);
    }
    println!(
        "lab {} is down: {stopped} process(es) stopped, {deleted} namespace(s) deleted",
        state.id
    );
    Ok(())
}
