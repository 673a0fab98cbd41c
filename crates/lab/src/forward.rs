//! A TCP forwarder from inside network namespaces to an address in the
//! forwarder's own namespace: `calico-lab forward` listens on the target's
//! address inside each given namespace and carries every connection to
//! the target. The lab runs one for etcd (see [`crate::datastore`]); it is
//! stopped by PID like every other process the lab starts.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::thread;

use anyhow::Context;
use calico_netlink::NetNs;

/// Binds `target`'s address inside each namespace and forwards forever.
pub fn run(target: SocketAddr, namespaces: &[PathBuf]) -> anyhow::Result<()> {
    let mut listeners = Vec::new();
    for path in namespaces {
        let ns = NetNs::open(path).with_context(|| format!("opening {}", path.display()))?;
        let listener = ns
            .run(|| TcpListener::bind(target))
            .with_context(|| format!("entering {}", path.display()))?
            .with_context(|| format!("listening on {target} inside {}", path.display()))?;
        listeners.push(listener);
    }
    let threads: Vec<_> = listeners
        .into_iter()
        .map(|listener| thread::spawn(move || accept_loop(listener, target)))
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    Ok(())
}

fn accept_loop(listener: TcpListener, target: SocketAddr) {
    for inbound in listener.incoming() {
        let Ok(inbound) = inbound else { continue };
        thread::spawn(move || {
            if let Ok(outbound) = TcpStream::connect(target) {
                let _ = splice(inbound, outbound);
            }
        });
    }
}

/// Copies both ways until each side has closed.
fn splice(a: TcpStream, b: TcpStream) -> io::Result<()> {
    let (a2, b2) = (a.try_clone()?, b.try_clone()?);
    let one_way = thread::spawn(move || copy(a2, b2));
    copy(b, a);
    let _ = one_way.join();
    Ok(())
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
