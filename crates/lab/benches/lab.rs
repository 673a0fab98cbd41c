//! How long `calico-lab up` and `down` take for 3 and 10 nodes, and the
//! cross-node TCP throughput between two pods through VXLAN beside the
//! same topology without an overlay and the bare underlay, in one run,
//! interleaved.
//!
//!     cargo bench -p calico-lab --bench lab [-- --rounds N --seconds S]
//!
//! Needs root, iperf3, and the release binaries (built here if missing).
//! Prints Markdown tables for bench/RESULTS.md.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use calico_lab::state::State;

const LAB: &str = env!("CARGO_BIN_EXE_calico-lab");

fn bin_dir() -> PathBuf {
    let dir = Path::new(LAB).parent().unwrap().to_path_buf();
    if !["calico-node", "calico", "calico-ipam"]
        .iter()
        .all(|b| dir.join(b).is_file())
    {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = Command::new(cargo);
        command.args(["build", "-p", "calico-node", "-p", "calico-cni"]);
        if dir.ends_with("release") {
            command.arg("--release");
        }
        assert!(command.status().unwrap().success(), "building the binaries");
    }
    dir
}

fn lab(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(LAB)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env("CALICO_LAB_BIN_DIR", bin_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "calico-lab {}: {stdout}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The time `up` printed beside a step.
fn step_time(output: &str, step: &str) -> Option<f64> {
    output
        .lines()
        .find(|l| l.contains(step))
        .and_then(|l| l.trim_start_matches('[').split('s').next())
        .and_then(|t| t.trim().parse().ok())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

/// Removes the lab (and its directory) even when the bench panics.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new(LAB)
            .arg("--dir")
            .arg(&self.0)
            .arg("down")
            .output();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn up_timings(rounds: usize) {
    println!("### `calico-lab up` and `down`\n");
    println!(
        "| nodes | pods | up, no demo (s) | agents ready at (s) | up with demo (s) | down (s) |"
    );
    println!(
        "|------:|-----:|----------------:|--------------------:|-----------------:|---------:|"
    );
    for nodes in [3usize, 10] {
        let (mut up, mut ready, mut demo, mut down) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let dir = std::env::temp_dir().join(format!(
                "calico-lab-bench-{}-{nodes}-{round}",
                std::process::id()
            ));
            let _cleanup = Cleanup(dir.clone());
            let nodes_text = nodes.to_string();
            let start = Instant::now();
            let output = lab(
                &dir,
                &[
                    "up",
                    "--nodes",
                    &nodes_text,
                    "--pods-per-node",
                    "2",
                    "--no-demo",
                ],
            );
            up.push(start.elapsed().as_secs_f64());
            ready.push(step_time(&output, "agents ready").unwrap_or(f64::NAN));
            let start = Instant::now();
            lab(&dir, &["down"]);
            down.push(start.elapsed().as_secs_f64());
            if nodes == 3 {
                let start = Instant::now();
                lab(
                    &dir,
                    &["up", "--nodes", &nodes_text, "--pods-per-node", "2"],
                );
                demo.push(start.elapsed().as_secs_f64());
                lab(&dir, &["down"]);
            }
        }
        let demo_text = if demo.is_empty() {
            "-".to_string()
        } else {
            format!("{:.2}", median(&mut demo))
        };
        println!(
            "| {nodes} | {} | {:.2} | {:.2} | {demo_text} | {:.2} |",
            nodes * 2,
            median(&mut up),
            median(&mut ready),
            median(&mut down)
        );
    }
    println!();
}

/// Gbit/s from `from` to `to` (namespace names) with one TCP stream.
fn iperf(from: &str, to: &str, address: &str, seconds: u64) -> f64 {
    let mut server = Command::new("ip")
        .args([
            "netns", "exec", to, "iperf3", "-s", "-B", address, "-p", "5201",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("running iperf3 (install iperf3: scripts/setup.sh)");
    // Wait until it listens (a probe connection would count as a test).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let listening = Command::new("ip")
            .args(["netns", "exec", to, "ss", "-Hltn", "sport", "=", ":5201"])
            .output()
            .map(|o| !o.stdout.is_empty())
            .unwrap_or(false);
        if listening {
            break;
        }
        assert!(Instant::now() < deadline, "iperf3 did not listen in {to}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = Command::new("ip")
        .args([
            "netns", "exec", from, "iperf3", "-c", address, "-p", "5201", "-J", "-t",
        ])
        .arg(seconds.to_string())
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    value["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("iperf3 from {from} to {address} gave no result: {value}"))
        / 1e9
}

fn throughput(rounds: usize, seconds: u64) {
    let base = std::env::temp_dir().join(format!("calico-lab-bench-tp-{}", std::process::id()));
    let vxlan_dir = base.join("vxlan");
    let plain_dir = base.join("plain");
    let _base = Cleanup(base.clone());
    let _a = Cleanup(vxlan_dir.clone());
    let _b = Cleanup(plain_dir.clone());
    lab(
        &vxlan_dir,
        &["up", "--nodes", "2", "--pods-per-node", "1", "--no-demo"],
    );
    lab(
        &plain_dir,
        &[
            "up",
            "--nodes",
            "2",
            "--pods-per-node",
            "1",
            "--encapsulation-mode",
            "Never",
            "--no-demo",
        ],
    );
    let vxlan = State::require(&vxlan_dir).unwrap();
    let plain = State::require(&plain_dir).unwrap();
    let pods = |s: &State| {
        (
            s.pods[0].netns.clone(),
            s.pods[1].netns.clone(),
            s.pods[1].ip.clone(),
        )
    };
    let (va, vb, vip) = pods(&vxlan);
    let (pa, pb, pip) = pods(&plain);
    let node_b_ip = vxlan.nodes[1]
        .address
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let (na, nb) = (vxlan.nodes[0].netns.clone(), vxlan.nodes[1].netns.clone());

    let mut rows: Vec<(&str, Vec<f64>)> = vec![
        (
            "pod to pod across nodes, VXLAN (vxlan.calico, MTU 1450)",
            Vec::new(),
        ),
        (
            "pod to pod across nodes, no overlay (routes via the underlay)",
            Vec::new(),
        ),
        (
            "node to node on the underlay (veth and bridge, no pods)",
            Vec::new(),
        ),
    ];
    for _ in 0..rounds {
        rows[0].1.push(iperf(&va, &vb, &vip, seconds));
        rows[1].1.push(iperf(&pa, &pb, &pip, seconds));
        rows[2].1.push(iperf(&na, &nb, &node_b_ip, seconds));
    }
    println!(
        "### Cross-node TCP throughput (iperf3, one stream, {seconds} s per sample, {rounds} rounds interleaved)\n"
    );
    println!("| path | median Gbit/s | min | max | vs underlay |");
    println!("|------|--------------:|----:|----:|------------:|");
    let floor = median(&mut rows[2].1.clone());
    for (name, mut samples) in rows {
        let (min, max) = (
            samples.iter().cloned().fold(f64::INFINITY, f64::min),
            samples.iter().cloned().fold(0.0, f64::max),
        );
        let m = median(&mut samples);
        println!(
            "| {name} | {m:.2} | {min:.2} | {max:.2} | {:.0}% |",
            100.0 * m / floor
        );
    }
    println!();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let rounds = flag("--rounds", 3) as usize;
    let seconds = flag("--seconds", 5);
    if args.iter().any(|a| a == "--list") {
        return;
    }
    up_timings(rounds);
    throughput(rounds, seconds);
}
