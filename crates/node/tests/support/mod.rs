//! A simulated node for the agent's root tests: a namespace playing the
//! host (with an uplink carrying its address and default route), pod
//! namespaces plumbed as Calico's CNI plugin plumbs them (without host
//! routes: the agent programs those), a datastore (real etcd or the
//! embedded file), and the `calico-node` binary started against the
//! node's namespace and stopped by its PID.

#![allow(dead_code)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use calico_client::Client;
use calico_datastore::{AnyBackend, DatastoreConfig, EmbeddedConfig, EtcdConfig};
use calico_model::{Action, ObjectMeta, Profile, Rule, WorkloadEndpoint};
use calico_netlink::testing::ScratchNetns;
use calico_netlink::{HostNetwork, WorkloadInterface, default_routes};
use calico_testutil::Etcd;
use tempfile::TempDir;

/// A datastore for one test.
pub enum Store {
    Etcd(Etcd),
    Embedded(TempDir),
}

impl Store {
    pub fn etcd() -> Store {
        Store::Etcd(Etcd::start())
    }

    pub fn embedded() -> Store {
        Store::Embedded(tempfile::tempdir().expect("temporary directory"))
    }

    pub fn config(&self) -> DatastoreConfig {
        match self {
            Store::Etcd(etcd) => DatastoreConfig::Etcd(EtcdConfig::new([etcd.endpoint()])),
            Store::Embedded(dir) => DatastoreConfig::Embedded(EmbeddedConfig {
                path: dir.path().join("calico.db"),
            }),
        }
    }

    /// The environment the binary reads its datastore from.
    pub fn env(&self) -> Vec<(String, String)> {
        match self {
            Store::Etcd(etcd) => vec![
                ("DATASTORE_TYPE".into(), "etcdv3".into()),
                ("ETCD_ENDPOINTS".into(), etcd.endpoint().into()),
            ],
            Store::Embedded(dir) => vec![
                ("DATASTORE_TYPE".into(), "embedded".into()),
                (
                    "EMBEDDED_DATASTORE_PATH".into(),
                    dir.path().join("calico.db").display().to_string(),
                ),
            ],
        }
    }

    pub fn backend(&self, rt: &tokio::runtime::Runtime) -> AnyBackend {
        rt.block_on(calico_datastore::connect(&self.config()))
            .expect("connecting to the test datastore")
    }

    pub fn client(&self, rt: &tokio::runtime::Runtime) -> Client<AnyBackend> {
        Client::new(self.backend(rt))
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The node namespace.
pub struct Node {
    pub ns: ScratchNetns,
    host: HostNetwork,
    pub pods: Vec<Pod>,
}

/// One pod: its namespace, address and host-side interface.
pub struct Pod {
    pub ns: ScratchNetns,
    pub ip: Ipv4Addr,
    pub iface: String,
    pub name: String,
}

impl Node {
    /// A node namespace with forwarding on and an uplink (a veth pair with
    /// both ends inside) carrying `10.99.0.1/24` and the default route.
    pub fn new(tag: &str) -> Node {
        let ns = ScratchNetns::new(tag);
        for cmd in [
            "ip link add uplink0 type veth peer name uplink1",
            "ip link set uplink0 up",
            "ip link set uplink1 up",
            "ip addr add 10.99.0.1/24 dev uplink0",
            "ip route add default via 10.99.0.254 dev uplink0 onlink",
            "sysctl -q -w net.ipv4.ip_forward=1",
        ] {
            ns.exec(&cmd.split(' ').collect::<Vec<_>>())
                .unwrap_or_else(|e| panic!("node setup `{cmd}`: {e}"));
        }
        let host = HostNetwork::new(ns.open()).expect("netlink socket in the node namespace");
        Node {
            ns,
            host,
            pods: Vec::new(),
        }
    }

    /// Plumbs a pod with `ip` behind `iface`, without a host route.
    pub fn add_pod(&mut self, name: &str, iface: &str, ip: Ipv4Addr) -> usize {
        let pod = ScratchNetns::new("pod");
        let spec = WorkloadInterface {
            host_ifname: iface.into(),
            pod_ifname: "eth0".into(),
            addresses: vec![IpAddr::V4(ip)],
            routes: default_routes(),
            mtu: None,
            queues: None,
            pod_mac: None,
            allow_ip_forwarding: false,
            host_routes: false,
        };
        self.host
            .add_workload(pod.netns(), &spec)
            .unwrap_or_else(|e| panic!("plumbing pod {iface}: {e}"));
        self.pods.push(Pod {
            ns: pod,
            ip,
            iface: iface.into(),
            name: name.into(),
        });
        self.pods.len() - 1
    }

    pub fn exec(&self, cmd: &str) -> io::Result<String> {
        self.ns.exec(&cmd.split(' ').collect::<Vec<_>>())
    }

    pub fn path(&self) -> PathBuf {
        self.ns.path()
    }
}

/// The WorkloadEndpoint the CNI plugin would write for `pod` on `node`.
pub fn workload_endpoint(node: &str, namespace: &str, pod: &Pod) -> WorkloadEndpoint {
    let mut wep = WorkloadEndpoint {
        metadata: ObjectMeta::namespaced(namespace, format!("{node}-k8s-{}-eth0", pod.name)),
        ..WorkloadEndpoint::default()
    };
    wep.metadata
        .labels
        .insert("projectcalico.org/namespace".into(), namespace.into());
    wep.metadata
        .labels
        .insert("projectcalico.org/orchestrator".into(), "k8s".into());
    wep.metadata.labels.insert("app".into(), pod.name.clone());
    wep.spec.orchestrator = "k8s".into();
    wep.spec.node = node.into();
    wep.spec.pod = pod.name.clone();
    wep.spec.endpoint = "eth0".into();
    wep.spec.ip_networks = vec![format!("{}/32", pod.ip)];
    wep.spec.profiles = vec![format!("kns.{namespace}")];
    wep.spec.interface_name = pod.iface.clone();
    wep
}

/// The profile kube-controllers writes for a namespace: allow everything.
pub fn namespace_profile(namespace: &str) -> Profile {
    let mut profile = Profile {
        metadata: ObjectMeta::named(format!("kns.{namespace}")),
        ..Profile::default()
    };
    profile.spec.ingress = vec![Rule::new(Action::Allow)];
    profile.spec.egress = vec![Rule::new(Action::Allow)];
    profile
}

/// The `calico-node` binary, run for one test; stopped by its PID.
pub struct AgentProcess {
    child: Option<Child>,
    log: PathBuf,
    _dir: TempDir,
}

impl AgentProcess {
    pub fn start(args: &[&str], env: &[(String, String)]) -> AgentProcess {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = dir.path().join("agent.log");
        let file = File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_calico-node"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CALICO_NODENAME_FILE", dir.path().join("nodename"))
            // Each agent its own status socket, so agents of parallel
            // tests never share one.
            .env("CALICO_BGP_STATUS_SOCKET", dir.path().join("bgp.ctl"))
            .env("CALICO_MTU_FILE", dir.path().join("mtu"))
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("starting calico-node");
        AgentProcess {
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_default()
    }

    /// The agent's BGP status socket (unless the test set another).
    pub fn status_socket(&self) -> PathBuf {
        self._dir.path().join("bgp.ctl")
    }

    /// Where the agent writes the pod MTU (unless the test set another).
    pub fn mtu_file(&self) -> PathBuf {
        self._dir.path().join("mtu")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it
    /// exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
            }
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits for the process to exit on its own; its exit status.
    pub fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `check` until it holds or `timeout` passes; how long it took.
pub fn wait_for(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> bool,
    context: impl Fn() -> String,
) -> Duration {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!(
        "timed out after {timeout:?} waiting for {what}\n{}",
        context()
    );
}

/// Whether a TCP connection from inside `from` to `to` completes within
/// `timeout` (a refusal counts: the packet got through).
pub fn tcp_reaches(from: &Pod, to: SocketAddr, timeout: Duration) -> bool {
    let result = from
        .ns
        .netns()
        .run(|| TcpStream::connect_timeout(&to, timeout))
        .expect("entering the pod namespace");
    match result {
        Ok(_) => true,
        Err(e) => e.kind() == io::ErrorKind::ConnectionRefused,
    }
}

/// A TCP connection opened from inside `from`.
pub fn tcp_connect(from: &Pod, to: SocketAddr) -> io::Result<TcpStream> {
    from.ns
        .netns()
        .run(|| TcpStream::connect_timeout(&to, Duration::from_secs(3)))
        .expect("entering the pod namespace")
}

/// Writes a line and reads the echo within `timeout`.
pub fn echo(stream: &mut TcpStream, line: &[u8], timeout: Duration) -> io::Result<()> {
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(line)?;
    let mut reply = vec![0u8; line.len()];
    stream.read_exact(&mut reply)?;
    if reply != line {
        return Err(io::Error::other(format!("unexpected echo {reply:?}")));
    }
    Ok(())
}

/// `GET path` on `address` from inside `ns`: the status code and body.
pub fn http_get(ns: &ScratchNetns, address: SocketAddr, path: &str) -> io::Result<(u16, String)> {
    let mut stream = ns
        .netns()
        .run(|| TcpStream::connect_timeout(&address, Duration::from_secs(2)))
        .map_err(io::Error::other)??;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// The agent's nftables table in the node namespace, listed with handles
/// (`None` when absent).
pub fn list_table(node: &Node, family: &str) -> Option<String> {
    node.exec(&format!("nft -a list table {family} calico"))
        .ok()
}

/// The main table's routes in the node namespace (`ip route` output).
pub fn routes(node: &Node, family: &str) -> String {
    node.exec(&format!("ip {family} route show table main"))
        .unwrap_or_default()
}

/// A TCP server inside a pod that echoes everything on every connection
/// until the peer closes it. Stopped on drop.
pub struct EchoServer {
    pub address: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl EchoServer {
    pub fn start(pod: &Pod, port: u16) -> EchoServer {
        use std::sync::atomic::Ordering;
        let address = SocketAddr::new(IpAddr::V4(pod.ip), port);
        let listener = pod
            .ns
            .netns()
            .run(|| std::net::TcpListener::bind(address))
            .expect("entering the pod namespace")
            .expect("binding the echo listener");
        listener.set_nonblocking(true).expect("non-blocking");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let stopped = stopped.clone();
                        std::thread::spawn(move || {
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                            let mut buf = [0u8; 1024];
                            while !stopped.load(Ordering::Relaxed) {
                                match stream.read(&mut buf) {
                                    Ok(0) => return,
                                    Ok(n) => {
                                        if stream.write_all(&buf[..n]).is_err() {
                                            return;
                                        }
                                    }
                                    Err(e)
                                        if matches!(
                                            e.kind(),
                                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                                        ) => {}
                                    Err(_) => return,
                                }
                            }
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => return,
                }
            }
        });
        EchoServer { address, stop }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Two node namespaces joined by a veth pair: A has `a_ip`/24 on `eth0`,
/// B `b_ip`/24. Both are removed on drop.
pub struct Underlay {
    pub a: ScratchNetns,
    pub b: ScratchNetns,
}

impl Underlay {
    pub fn new(tag: &str, a_ip: &str, b_ip: &str) -> Underlay {
        let a = ScratchNetns::new(&format!("{tag}a"));
        let b = ScratchNetns::new(&format!("{tag}b"));
        a.exec(&[
            "ip",
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            b.name(),
        ])
        .expect("creating the underlay veth pair");
        for (ns, ip) in [(&a, a_ip), (&b, b_ip)] {
            for cmd in [
                vec!["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
                vec!["ip", "link", "set", "eth0", "up"],
                vec!["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
            ] {
                let cmd: Vec<&str> = cmd.iter().map(|s| s.as_ref()).collect();
                ns.exec(&cmd)
                    .unwrap_or_else(|e| panic!("underlay setup: {e}"));
            }
        }
        Underlay { a, b }
    }
}

/// Starts the `calico-node` binary (start-up, then the agent) for node
/// `name` in `ns` with address `ip`, the datastore's variables and
/// `extra`, and waits until it reports ready.
pub fn start_node(
    store: &Store,
    name: &str,
    ns: &ScratchNetns,
    ip: &str,
    extra: &[(&str, &str)],
) -> AgentProcess {
    let mut env = store.env();
    for (k, v) in [
        ("NODENAME", name),
        ("IP", ip),
        ("FELIX_HEALTHENABLED", "true"),
        ("FELIX_IPV6SUPPORT", "false"),
        ("LOG_LEVEL", "info"),
    ]
    .iter()
    .chain(extra)
    {
        env.push((k.to_string(), v.to_string()));
    }
    let netns = ns.path().display().to_string();
    let agent = AgentProcess::start(&["--netns", &netns], &env);
    let health = "127.0.0.1:9099".parse().unwrap();
    wait_for(
        Duration::from_secs(60),
        &format!("{name} to report ready"),
        || matches!(http_get(ns, health, "/readiness"), Ok((200, _))),
        || agent.log(),
    );
    agent
}
