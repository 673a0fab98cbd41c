//! Connectivity between pods, measured: a TCP echo listener inside every
//! pod's namespace, a connection from inside every other pod's namespace
//! to it, and the result as a matrix. Sockets are opened inside the
//! namespaces (through `calico-netlink`'s namespace handle) and used from
//! this process, so pods need no processes of their own.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use calico_netlink::NetNs;

use crate::state::PodState;
use crate::system::netns_path;

/// The port every pod listens on during a probe.
pub const PROBE_PORT: u16 = 8080;
/// How long a connection attempt may take before the flow counts as
/// blocked (policy drops packets, so a blocked flow times out).
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
const GREETING: &[u8] = b"calico-lab probe\n";

/// Echo listeners inside pods; they stop when dropped.
#[derive(Debug)]
pub struct Listeners {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Listeners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn address(pod: &PodState) -> anyhow::Result<SocketAddr> {
    let ip: IpAddr = pod
        .ip
        .parse()
        .with_context(|| format!("pod {} has no address", pod.key()))?;
    Ok(SocketAddr::new(ip, PROBE_PORT))
}

/// Starts an echo listener on each pod's address.
pub fn listen(pods: &[PodState]) -> anyhow::Result<Listeners> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for pod in pods {
        let address = address(pod)?;
        let ns = NetNs::open(netns_path(&pod.netns))
            .with_context(|| format!("opening pod {}'s namespace", pod.key()))?;
        let listener = ns
            .run(|| TcpListener::bind(address))
            .with_context(|| format!("entering pod {}'s namespace", pod.key()))?
            .with_context(|| format!("listening on {address} in pod {}", pod.key()))?;
        listener.set_nonblocking(true)?;
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || serve(listener, &stop)));
    }
    Ok(Listeners { stop, threads })
}

fn serve(listener: TcpListener, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                std::thread::spawn(move || {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut buffer = [0u8; 64];
                    if let Ok(n) = stream.read(&mut buffer) {
                        let _ = stream.write_all(&buffer[..n]);
                    }
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Connects from inside `from` to `to`'s listener and checks the echo.
pub fn probe(from: &PodState, to: &PodState) -> Result<(), String> {
    let target = address(to).map_err(|e| e.to_string())?;
    let ns = NetNs::open(netns_path(&from.netns)).map_err(|e| e.to_string())?;
    let mut stream = ns
        .run(|| TcpStream::connect_timeout(&target, CONNECT_TIMEOUT))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(CONNECT_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream.write_all(GREETING).map_err(|e| e.to_string())?;
    let mut reply = [0u8; 64];
    let n = stream.read(&mut reply).map_err(|e| e.to_string())?;
    if &reply[..n] == GREETING {
        Ok(())
    } else {
        Err(format!("unexpected reply {:?}", &reply[..n]))
    }
}

/// Which ordered pairs `(from, to)` of pods (by index) connect.
pub type Matrix = BTreeMap<(usize, usize), bool>;

/// Probes every ordered pair of distinct pods, many at once.
pub fn measure(pods: &[PodState]) -> anyhow::Result<Matrix> {
    let _listeners = listen(pods)?;
    let pairs: Vec<(usize, usize)> = (0..pods.len())
        .flat_map(|i| {
            (0..pods.len())
                .filter(move |j| *j != i)
                .map(move |j| (i, j))
        })
        .collect();
    let mut matrix = Matrix::new();
    for chunk in pairs.chunks(64) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|&(i, j)| {
                    let (from, to) = (&pods[i], &pods[j]);
                    scope.spawn(move || ((i, j), probe(from, to).is_ok()))
                })
                .collect();
            for handle in handles {
                if let Ok((pair, ok)) = handle.join() {
                    matrix.insert(pair, ok);
                }
            }
        });
    }
    Ok(matrix)
}

/// The matrix as text: one row per source pod, one column per
/// destination. `ok` connects, `x` is blocked; with `expected`, a cell
/// that disagrees is marked `!` (`ok!`: open but policy says blocked,
/// `x!`: blocked but policy says open).
pub fn render(pods: &[PodState], observed: &Matrix, expected: Option<&Matrix>) -> String {
    let width = pods.iter().map(|p| p.key().len()).max().unwrap_or(0) + 5;
    let mut out = String::new();
    let _ = write!(out, "{:width$}", "from \\ to");
    for j in 0..pods.len() {
        let _ = write!(out, "{:>5}", j + 1);
    }
    out.push('\n');
    for (i, pod) in pods.iter().enumerate() {
        let _ = write!(out, "{:width$}", format!("{:>2} {}", i + 1, pod.key()));
        for j in 0..pods.len() {
            let cell = if i == j {
                ".".to_string()
            } else {
                let ok = observed.get(&(i, j)).copied().unwrap_or(false);
                let mut cell = if ok { "ok" } else { "x" }.to_string();
                if expected.is_some_and(|e| e.get(&(i, j)).copied() != Some(ok)) {
                    cell.push('!');
                }
                cell
            };
            let _ = write!(out, "{cell:>5}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str) -> PodState {
        PodState {
            namespace: ns.into(),
            name: name.into(),
            node: "node-1".into(),
            netns: String::new(),
            container_id: String::new(),
            uid: String::new(),
            service_account: "default".into(),
            labels: BTreeMap::new(),
            ip: "192.168.0.5".into(),
            endpoint: String::new(),
        }
    }

    #[test]
    fn matrix_marks_disagreement() {
        let pods = [pod("dev", "web-1"), pod("prod", "web-1")];
        let observed = Matrix::from([((0, 1), true), ((1, 0), false)]);
        let text = render(&pods, &observed, None);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with(" 1 dev/web-1"), "{text}");
        assert!(lines[1].trim_end().ends_with(".   ok"), "{text}");
        assert!(lines[2].trim_end().ends_with("x    ."), "{text}");
        let expected = Matrix::from([((0, 1), false), ((1, 0), false)]);
        let text = render(&pods, &observed, Some(&expected));
        assert!(text.contains("ok!"), "{text}");
        assert!(!text.contains("x!"), "{text}");
    }
}
