//! TCP reachability between network namespaces a runtime created (opened
//! by path), shaped like `calico_netlink::testing`'s probes for scratch
//! namespaces: a listener that echoes the first line, and a client that
//! expects its greeting back.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use calico_netlink::NetNs;

const GREETING: &[u8] = b"hello from the other pod\n";

/// A TCP echo listener bound inside a namespace; stops when dropped.
#[derive(Debug)]
pub struct Echo {
    pub address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    /// Listens on `ip` (port chosen by the kernel) inside the namespace at
    /// `netns`.
    pub fn start(netns: &Path, ip: IpAddr) -> Echo {
        let ns = NetNs::open(netns).expect("opening the pod's namespace");
        let listener = ns
            .run(|| TcpListener::bind(SocketAddr::new(ip, 0)))
            .expect("entering the pod's namespace")
            .expect("binding the listener");
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
                        let mut line = [0u8; 64];
                        if let Ok(n) = stream.read(&mut line) {
                            let _ = stream.write_all(&line[..n]);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
        });
        Echo {
            address,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Connects from inside the namespace at `netns` to `address`, sends a
/// greeting and expects it echoed back.
pub fn tcp_probe(netns: &Path, address: SocketAddr) -> io::Result<()> {
    let ns = NetNs::open(netns).map_err(io::Error::other)?;
    let mut stream = ns
        .run(|| TcpStream::connect_timeout(&address, Duration::from_secs(3)))
        .map_err(io::Error::other)??;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    stream.write_all(GREETING)?;
    let mut reply = [0u8; 64];
    let n = loop {
        match stream.read(&mut reply) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    if &reply[..n] == GREETING {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "unexpected echo {:?}",
            String::from_utf8_lossy(&reply[..n])
        )))
    }
}
