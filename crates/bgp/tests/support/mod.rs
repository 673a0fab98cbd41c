//! A two-namespace lab for interop tests: our speaker in one network
//! namespace, a real peer (BIRD 2, GoBGP, FRR) in another, joined by a veth
//! pair. Everything is created with unique names and removed on drop;
//! daemons run in the foreground and are stopped by their PID.
//!
//! Needs root (namespaces) and the Debian packages `bird2`, `gobgpd` and
//! `frr` (scripts/setup.sh installs them).

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use calico_bgp::driver::{Driver, DriverConfig, SpeakerHandle};
use calico_bgp::sink::{NetlinkSink, ROUTE_PROTOCOL};
use calico_bgp::speaker::{PeerConfig, SpeakerConfig};
use calico_netlink::testing::ScratchNetns;
use ipnet::IpNet;

pub const OUR_V4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
pub const PEER_V4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
pub const OUR_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 1);
pub const PEER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 2);

/// Our namespace and the peer's, joined by a veth pair carrying
/// 10.99.0.0/24 and fd00:99::/64.
pub struct Lab {
    pub us: ScratchNetns,
    pub peer: ScratchNetns,
}

impl Lab {
    pub fn new(tag: &str) -> Lab {
        let us = ScratchNetns::new(&format!("{tag}u"));
        let peer = ScratchNetns::new(&format!("{tag}p"));
        let ours = calico_testutil::unique_name("bgu");
        let theirs = calico_testutil::unique_name("bgp");
        run(&[
            "ip",
            "link",
            "add",
            &ours,
            "netns",
            us.name(),
            "type",
            "veth",
            "peer",
            "name",
            &theirs,
            "netns",
            peer.name(),
        ]);
        for (ns, link, v4, v6) in [
            (&us, &ours, OUR_V4, OUR_V6),
            (&peer, &theirs, PEER_V4, PEER_V6),
        ] {
            ns.exec(&["ip", "addr", "add", &format!("{v4}/24"), "dev", link])
                .unwrap();
            ns.exec(&[
                "ip",
                "-6",
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                link,
                "nodad",
            ])
            .unwrap();
            ns.exec(&["ip", "link", "set", link, "up"]).unwrap();
        }
        Lab { us, peer }
    }

    /// Another peer namespace, joined to ours by its own veth pair carrying
    /// 10.99.`subnet`.0/24: we are .1, it is .2.
    pub fn extra_peer(&self, tag: &str, subnet: u8) -> ScratchNetns {
        let ns = ScratchNetns::new(tag);
        let ours = calico_testutil::unique_name("bgu");
        let theirs = calico_testutil::unique_name("bgp");
        run(&[
            "ip",
            "link",
            "add",
            &ours,
            "netns",
            self.us.name(),
            "type",
            "veth",
            "peer",
            "name",
            &theirs,
            "netns",
            ns.name(),
        ]);
        for (n, link, host) in [(&self.us, &ours, 1), (&ns, &theirs, 2)] {
            n.exec(&[
                "ip",
                "addr",
                "add",
                &format!("10.99.{subnet}.{host}/24"),
                "dev",
                link,
            ])
            .unwrap();
            n.exec(&["ip", "link", "set", link, "up"]).unwrap();
        }
        ns
    }

    /// Our routes (protocol [`ROUTE_PROTOCOL`]) in our namespace, one line each.
    pub fn our_kernel_routes(&self, ipv6: bool) -> String {
        let family = if ipv6 { "-6" } else { "-4" };
        self.us
            .exec(&[
                "ip",
                family,
                "route",
                "show",
                "proto",
                &ROUTE_PROTOCOL.to_string(),
            ])
            .unwrap()
    }

    /// The peer's kernel routes.
    pub fn peer_kernel_routes(&self, ipv6: bool) -> String {
        let family = if ipv6 { "-6" } else { "-4" };
        self.peer.exec(&["ip", family, "route", "show"]).unwrap()
    }

    /// Starts our speaker inside our namespace, listening on port 179 and
    /// installing routes there.
    pub fn speaker(&self, asn: u32) -> Ours {
        let sink = NetlinkSink::open(Some(&self.us.path())).expect("netlink in our namespace");
        let config = DriverConfig {
            speaker: SpeakerConfig {
                local_as: asn,
                router_id: OUR_V4,
                cluster_id: None,
                address_v4: Some(OUR_V4),
                address_v6: Some(OUR_V6),
            },
            listen: vec![SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 179)],
            netns: Some(self.us.path()),
        };
        let (driver, handle) = Driver::new(config, Box::new(sink)).expect("driver");
        let task = tokio::spawn(driver.run());
        Ours { handle, task }
    }
}

/// Our running speaker.
pub struct Ours {
    pub handle: SpeakerHandle,
    pub task: tokio::task::JoinHandle<()>,
}

impl Ours {
    pub async fn state(&self, peer: IpAddr) -> Option<String> {
        let report = self.handle.status().await.ok()?;
        report
            .peers
            .iter()
            .find(|p| p.address == peer)
            .map(|p| format!("{} {}", p.state, p.info.clone().unwrap_or_default()))
    }

    pub async fn established(&self, peer: IpAddr) -> bool {
        self.state(peer)
            .await
            .is_some_and(|s| s.starts_with("Established"))
    }
}

impl Drop for Ours {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A peer definition for our side with short timers for tests.
pub fn peer_config(address: IpAddr, asn: u32) -> PeerConfig {
    let mut p = PeerConfig::new(address, asn);
    p.connect_retry = Duration::from_secs(1);
    p.families = vec![calico_bgp::wire::Family::unicast_of(address)];
    p
}

pub fn run(argv: &[&str]) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .expect("running a command");
    assert!(
        out.status.success(),
        "{argv:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `check` every 100 ms until it is true or `timeout` passes.
pub async fn wait_for(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// A daemon started inside a namespace, stopped by PID on drop.
pub struct Daemon {
    pub name: &'static str,
    child: Option<Child>,
}

impl Daemon {
    fn spawn(name: &'static str, ns: &ScratchNetns, argv: &[&str], log: &Path) -> Daemon {
        let log = std::fs::File::create(log).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", ns.name()])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Daemon {
            name,
            child: Some(child),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Waits for the daemon to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(child) = &mut self.child
                && let Ok(Some(_)) = child.try_wait()
            {
                self.child = None;
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not exit", self.name);
    }

    /// Kills it with SIGKILL: no NOTIFICATION, the connection just dies.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A scratch directory the `frr` user can use too.
pub fn scratch_dir(tag: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("calico-bgp-{tag}-"))
        .tempdir_in("/tmp")
        .expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    dir
}

/// BIRD 2 in the peer namespace.
pub struct Bird {
    pub daemon: Daemon,
    pub dir: tempfile::TempDir,
}

impl Bird {
    pub fn start(lab: &Lab, config: &str) -> Bird {
        Self::start_in(lab, config, scratch_dir("bird"))
    }

    pub fn start_in(lab: &Lab, config: &str, dir: tempfile::TempDir) -> Bird {
        Self::start_in_ns(&lab.peer, config, dir)
    }

    /// BIRD in any namespace.
    pub fn start_in_ns(ns: &ScratchNetns, config: &str, dir: tempfile::TempDir) -> Bird {
        let bird = calico_testutil::require_binary("bird", "bird2");
        let conf = dir.path().join("bird.conf");
        std::fs::write(&conf, config).expect("writing bird.conf");
        let sock = dir.path().join("bird.ctl");
        let _ = std::fs::remove_file(&sock);
        let daemon = Daemon::spawn(
            "bird",
            ns,
            &[
                bird.to_str().unwrap(),
                "-f",
                "-c",
                conf.to_str().unwrap(),
                "-s",
                sock.to_str().unwrap(),
            ],
            &dir.path().join("bird.log"),
        );
        let b = Bird { daemon, dir };
        let start = Instant::now();
        while b.try_birdc("show status").is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "BIRD did not start: {}",
                b.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        b
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bird.log")).unwrap_or_default()
    }

    pub fn try_birdc(&self, command: &str) -> Option<String> {
        let out = Command::new("birdc")
            .args(["-s", self.dir.path().join("bird.ctl").to_str()?])
            .args(command.split_whitespace())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn birdc(&self, command: &str) -> String {
        self.try_birdc(command)
            .unwrap_or_else(|| panic!("birdc {command} failed; log: {}", self.log()))
    }
}

/// GoBGP in the peer namespace.
pub struct GoBgp {
    pub daemon: Daemon,
    pub dir: tempfile::TempDir,
    pub api_port: u16,
    ns: String,
}

impl GoBgp {
    pub fn start(lab: &Lab, config: &str) -> GoBgp {
        let gobgpd = calico_testutil::require_binary("gobgpd", "gobgpd");
        let dir = scratch_dir("gobgp");
        let conf = dir.path().join("gobgpd.toml");
        std::fs::write(&conf, config).expect("writing gobgpd.toml");
        // The API listens on the peer namespace's own loopback.
        let api_port = 50051;
        let daemon = Daemon::spawn(
            "gobgpd",
            &lab.peer,
            &[
                gobgpd.to_str().unwrap(),
                "-f",
                conf.to_str().unwrap(),
                &format!("--api-hosts=127.0.0.1:{api_port}"),
            ],
            &dir.path().join("gobgpd.log"),
        );
        let g = GoBgp {
            daemon,
            dir,
            api_port,
            ns: lab.peer.name().to_string(),
        };
        let start = Instant::now();
        while g.try_gobgp(&["global"]).is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "gobgpd did not start: {}",
                g.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        g
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gobgpd.log")).unwrap_or_default()
    }

    pub fn try_gobgp(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "gobgp",
                "-p",
                &self.api_port.to_string(),
            ])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn gobgp(&self, args: &[&str]) -> String {
        self.try_gobgp(args)
            .unwrap_or_else(|| panic!("gobgp {args:?} failed; log: {}", self.log()))
    }
}

/// FRR (zebra and bgpd) in the peer namespace.
pub struct Frr {
    pub zebra: Daemon,
    pub bgpd: Daemon,
    pub dir: tempfile::TempDir,
    bgpd_args: Vec<String>,
}

impl Frr {
    pub fn start(lab: &Lab, config: &str) -> Frr {
        let dir = scratch_dir("frr");
        let conf = dir.path().join("frr.conf");
        std::fs::write(&conf, config).expect("writing frr.conf");
        run(&["chown", "-R", "frr:frr", dir.path().to_str().unwrap()]);
        let zserv = dir.path().join("zserv.api");
        let path = |p: &PathBuf| p.to_str().unwrap().to_string();
        let d = path(&dir.path().to_path_buf());
        let zebra_bin = PathBuf::from("/usr/lib/frr/zebra");
        let bgpd_bin = PathBuf::from("/usr/lib/frr/bgpd");
        assert!(
            zebra_bin.exists() && bgpd_bin.exists(),
            "FRR is not installed; this test needs the Debian package `frr`: run scripts/setup.sh"
        );
        let common = |pid: &str| {
            vec![
                "-z".to_string(),
                path(&zserv),
                "--vty_socket".to_string(),
                d.clone(),
                "-i".to_string(),
                format!("{d}/{pid}"),
                "-f".to_string(),
                path(&conf),
            ]
        };
        let mut zargs = vec![path(&zebra_bin)];
        zargs.extend(common("zebra.pid"));
        let zargs: Vec<&str> = zargs.iter().map(String::as_str).collect();
        let zebra = Daemon::spawn("zebra", &lab.peer, &zargs, &dir.path().join("zebra.log"));
        let start = Instant::now();
        while !zserv.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "zebra did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut bargs = vec![path(&bgpd_bin)];
        bargs.extend(common("bgpd.pid"));
        // bgpd listens on its own; the port is the standard one.
        let args: Vec<&str> = bargs.iter().map(String::as_str).collect();
        let bgpd = Daemon::spawn("bgpd", &lab.peer, &args, &dir.path().join("bgpd.log"));
        let f = Frr {
            zebra,
            bgpd,
            dir,
            bgpd_args: bargs,
        };
        let start = Instant::now();
        while f.try_vtysh("show bgp summary").is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "bgpd did not start: {}",
                f.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        f
    }

    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!("zebra: {}\nbgpd: {}", read("zebra.log"), read("bgpd.log"))
    }

    pub fn try_vtysh(&self, command: &str) -> Option<String> {
        let out = Command::new("vtysh")
            .args(["--vty_socket", self.dir.path().to_str()?, "-c", command])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn vtysh(&self, command: &str) -> String {
        self.try_vtysh(command)
            .unwrap_or_else(|| panic!("vtysh -c {command} failed; log: {}", self.log()))
    }

    /// Runs configuration commands (after `configure terminal`).
    pub fn vtysh_config(&self, commands: &[&str]) {
        let mut cmd = Command::new("vtysh");
        cmd.args([
            "--vty_socket",
            self.dir.path().to_str().unwrap(),
            "-c",
            "configure terminal",
        ]);
        for c in commands {
            cmd.args(["-c", c]);
        }
        let out = cmd.output().expect("running vtysh");
        assert!(
            out.status.success(),
            "vtysh {commands:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts bgpd again (after [`Daemon::kill`]) with the same files.
    pub fn restart_bgpd(&mut self, lab: &Lab) {
        self.bgpd.kill();
        let _ = std::fs::remove_file(self.dir.path().join("bgpd.pid"));
        let args: Vec<&str> = self.bgpd_args.iter().map(String::as_str).collect();
        self.bgpd = Daemon::spawn("bgpd", &lab.peer, &args, &self.dir.path().join("bgpd2.log"));
        let start = Instant::now();
        while self.try_vtysh("show bgp summary").is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "bgpd did not restart: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether `ip route` output has a route to `prefix` via `gateway`.
pub fn has_route(routes: &str, prefix: &str, gateway: &str) -> bool {
    routes.lines().any(|l| {
        l.split_whitespace().next() == Some(prefix) && l.contains(&format!("via {gateway} "))
    })
}

/// Parses a prefix (helper for tests).
pub fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// The password the password tests give the real peer.
pub const PASSWORD: &str = "calico-s3cret";

/// Peers `ours` with `peer` using a wrong password first: for `hold` the
/// session must not come up, while our speaker keeps answering. Then with
/// [`PASSWORD`]: the session must come up.
pub async fn wrong_then_right_password(ours: &Ours, mut peer: PeerConfig, hold: Duration) {
    let address = peer.address;
    peer.password = Some("not-the-password".into());
    ours.handle.set_peer(peer.clone()).await.unwrap();
    let start = Instant::now();
    while start.elapsed() < hold {
        assert!(
            !ours.established(address).await,
            "established with a wrong password"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let state = ours.state(address).await;
    assert!(state.is_some(), "our speaker still answers");
    assert!(!ours.task.is_finished(), "our speaker is still running");
    peer.password = Some(PASSWORD.into());
    ours.handle.set_peer(peer).await.unwrap();
    wait_for(
        "the session with the right password",
        Duration::from_secs(30),
        async || ours.established(address).await,
    )
    .await;
}
