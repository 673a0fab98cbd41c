//! The I/O driver: runs a [`Speaker`] over TCP.
//!
//! One event loop owns the speaker and handles inputs one at a time
//! with synchronous calls. Sockets live in child tasks that only send
//! inputs in: a task per listener accepting connections, a task per
//! outgoing connection attempt, and a reader and a writer task per
//! connection. Timers are the speaker's next deadline, slept on by the
//! loop. Route changes go in batches to a [`RouteSink`] on a thread of its
//! own, so a slow kernel never holds up keepalives.
//!
//! [`Driver::new`] binds the listeners (errors surface at once) and returns
//! the loop as a value; the caller spawns [`Driver::run`] on a tokio runtime
//! and steers it with the [`SpeakerHandle`].

mod net;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use calico_netlink::NetNs;
use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use net::{SocketContext, Write, read_loop, write_loop};

use crate::rib::Path;
use crate::session::ConnId;
use crate::sink::RouteSink;
use crate::speaker::{
    Origination, Output, PeerConfig, PeerStatus, RouteChange, Speaker, SpeakerConfig,
};
use crate::wire::{DecodeError, Message};

/// How to run the speaker.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub speaker: SpeakerConfig,
    /// Addresses to accept BGP connections on (`0.0.0.0:179`, or another
    /// port as Calico's `listenPort` allows). Empty: outgoing only.
    pub listen: Vec<SocketAddr>,
    /// Network namespace to open every socket in (`None`: our own).
    pub netns: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("opening network namespace {}", path.display())]
    Namespace {
        path: PathBuf,
        #[source]
        source: calico_netlink::NetNsError,
    },
    #[error("listening for BGP on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The speaker is no longer running.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the BGP speaker has stopped")]
pub struct Stopped;

/// Peer states at one moment, with both clocks so `since` can be shown as
/// a time of day.
#[derive(Debug, Clone)]
pub struct StatusReport {
    pub now: Instant,
    pub wall: SystemTime,
    pub peers: Vec<PeerStatus>,
}

impl StatusReport {
    /// The wall-clock time of a monotonic instant in this report.
    pub fn wall_time(&self, at: Instant) -> SystemTime {
        self.wall - self.now.saturating_duration_since(at)
    }
}

/// Requests to the running speaker.
#[derive(Debug)]
enum Command {
    SetPeer(Box<PeerConfig>),
    Apply(Box<crate::config::Desired>),
    RemovePeer(IpAddr),
    Originate(Origination),
    Withdraw(IpNet),
    Status(oneshot::Sender<StatusReport>),
    BestPaths(oneshot::Sender<BTreeMap<IpNet, Path>>),
    Shutdown,
}

/// Everything the event loop reacts to.
#[derive(Debug)]
enum Input {
    Command(Command),
    Accepted {
        stream: tokio::net::TcpStream,
        remote: SocketAddr,
        local: SocketAddr,
    },
    Connected {
        peer: IpAddr,
        conn: ConnId,
        stream: tokio::net::TcpStream,
    },
    ConnectFailed {
        peer: IpAddr,
        conn: ConnId,
        reason: String,
    },
    Message {
        peer: IpAddr,
        conn: ConnId,
        message: Message,
    },
    DecodeError {
        peer: IpAddr,
        conn: ConnId,
        error: DecodeError,
    },
    Closed {
        peer: IpAddr,
        conn: ConnId,
        reason: String,
    },
}

/// Steers a running speaker. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SpeakerHandle {
    tx: mpsc::Sender<Input>,
}

impl SpeakerHandle {
    async fn send(&self, command: Command) -> Result<(), Stopped> {
        self.tx
            .send(Input::Command(command))
            .await
            .map_err(|_| Stopped)
    }

    /// Adds a peer, or changes one.
    pub async fn set_peer(&self, peer: PeerConfig) -> Result<(), Stopped> {
        self.send(Command::SetPeer(Box::new(peer))).await
    }

    /// Makes the speaker match `desired`: its own settings, exactly these
    /// peers and exactly these originated prefixes. (A new listen port
    /// takes a new driver.)
    pub async fn apply(&self, desired: crate::config::Desired) -> Result<(), Stopped> {
        self.send(Command::Apply(Box::new(desired))).await
    }

    pub async fn remove_peer(&self, address: IpAddr) -> Result<(), Stopped> {
        self.send(Command::RemovePeer(address)).await
    }

    pub async fn originate(&self, origination: Origination) -> Result<(), Stopped> {
        self.send(Command::Originate(origination)).await
    }

    pub async fn withdraw(&self, prefix: IpNet) -> Result<(), Stopped> {
        self.send(Command::Withdraw(prefix)).await
    }

    pub async fn status(&self) -> Result<StatusReport, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Status(tx)).await?;
        rx.await.map_err(|_| Stopped)
    }

    /// The best path to every prefix.
    pub async fn best_paths(&self) -> Result<BTreeMap<IpNet, Path>, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::BestPaths(tx)).await?;
        rx.await.map_err(|_| Stopped)
    }

    /// Sends Cease to every peer and ends the loop.
    pub async fn shutdown(&self) -> Result<(), Stopped> {
        self.send(Command::Shutdown).await
    }
}

#[derive(Debug)]
struct Connection {
    writer: mpsc::UnboundedSender<Write>,
    reader: JoinHandle<()>,
}

/// The event loop and what it owns. See the module documentation.
#[derive(Debug)]
pub struct Driver {
    speaker: Speaker,
    tx: mpsc::Sender<Input>,
    rx: mpsc::Receiver<Input>,
    sockets: SocketContext,
    listeners: Vec<Arc<TcpListener>>,
    connections: HashMap<(IpAddr, ConnId), Connection>,
    connecting: HashMap<(IpAddr, ConnId), JoinHandle<()>>,
    sink: std::sync::mpsc::Sender<Vec<RouteChange>>,
    sink_thread: Option<std::thread::JoinHandle<()>>,
}

/// Inputs handled before outputs are flushed, so bursts of UPDATEs become
/// few sink batches and few writes.
const BATCH: usize = 256;

impl Driver {
    /// Binds the listeners and prepares the loop; call from within a tokio
    /// runtime.
    pub fn new(
        config: DriverConfig,
        sink: Box<dyn RouteSink>,
    ) -> Result<(Driver, SpeakerHandle), DriverError> {
        let netns = match &config.netns {
            None => None,
            Some(path) => Some(Arc::new(NetNs::open(path).map_err(|source| {
                DriverError::Namespace {
                    path: path.clone(),
                    source,
                }
            })?)),
        };
        let sockets = SocketContext { netns };
        let mut listeners = Vec::new();
        for address in &config.listen {
            let listener = sockets
                .listen(*address)
                .map_err(|source| DriverError::Listen {
                    address: *address,
                    source,
                })?;
            listeners.push(Arc::new(listener));
        }
        let (tx, rx) = mpsc::channel(1024);
        let (sink_tx, sink_rx) = std::sync::mpsc::channel::<Vec<RouteChange>>();
        let sink_thread = std::thread::Builder::new()
            .name("bgp-routes".into())
            .spawn(move || run_sink(sink, sink_rx))
            .ok();
        let driver = Driver {
            speaker: Speaker::new(config.speaker),
            tx: tx.clone(),
            rx,
            sockets,
            listeners,
            connections: HashMap::new(),
            connecting: HashMap::new(),
            sink: sink_tx,
            sink_thread,
        };
        Ok((driver, SpeakerHandle { tx }))
    }

    /// The addresses actually listened on (useful with port 0).
    pub fn local_addresses(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Runs until [`SpeakerHandle::shutdown`].
    pub async fn run(mut self) {
        let mut accepts = Vec::new();
        for listener in &self.listeners {
            accepts.push(tokio::spawn(accept_loop(listener.clone(), self.tx.clone())));
        }
        'outer: loop {
            let deadline = self.speaker.next_deadline();
            let first = tokio::select! {
                input = self.rx.recv() => input,
                _ = sleep_until(deadline) => None,
            };
            let now = Instant::now();
            self.speaker.tick(now);
            // Take more only while there is room in this batch, so nothing
            // taken is left unhandled.
            let mut next = first;
            let mut handled = 0;
            while let Some(input) = next.take() {
                if self.handle(input, now) {
                    break 'outer;
                }
                handled += 1;
                if handled < BATCH {
                    next = self.rx.try_recv().ok();
                }
            }
            self.flush(now);
        }
        self.flush(Instant::now());
        for accept in accepts {
            accept.abort();
        }
        for (_, pending) in self.connecting.drain() {
            pending.abort();
        }
        for (_, connection) in self.connections.drain() {
            let _ = connection.writer.send(Write::Close);
        }
        // Closing the channel ends the sink thread once it has applied
        // everything sent so far.
        let Driver {
            sink, sink_thread, ..
        } = self;
        drop(sink);
        if let Some(thread) = sink_thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// Handles one input; `true` means stop.
    fn handle(&mut self, input: Input, now: Instant) -> bool {
        match input {
            Input::Command(command) => return self.command(command, now),
            Input::Accepted {
                stream,
                remote,
                local,
            } => {
                let remote_ip = remote.ip().to_canonical();
                match self
                    .speaker
                    .accept(remote_ip, local.ip().to_canonical(), now)
                {
                    Some(conn) => self.attach(remote_ip, conn, stream),
                    None => {
                        tracing::debug!(%remote, "refused a connection from an unknown or stopped peer")
                    }
                }
            }
            Input::Connected { peer, conn, stream } => {
                self.connecting.remove(&(peer, conn));
                let local = stream
                    .local_addr()
                    .map(|a| a.ip().to_canonical())
                    .unwrap_or(IpAddr::V4(self.speaker.config().router_id));
                self.attach(peer, conn, stream);
                self.speaker.connected(peer, conn, local, now);
            }
            Input::ConnectFailed { peer, conn, reason } => {
                self.connecting.remove(&(peer, conn));
                self.speaker.connect_failed(peer, conn, &reason, now);
            }
            Input::Message {
                peer,
                conn,
                message,
            } => self.speaker.message(peer, conn, message, now),
            Input::DecodeError { peer, conn, error } => {
                tracing::warn!(%peer, %error, "undecodable message");
                self.speaker.decode_error(peer, conn, error, now);
            }
            Input::Closed { peer, conn, reason } => {
                self.speaker.closed(peer, conn, &reason, now);
                self.detach(peer, conn);
            }
        }
        false
    }

    fn command(&mut self, command: Command, now: Instant) -> bool {
        match command {
            Command::SetPeer(config) => {
                let old = self.password_of(config.address);
                self.update_listener_keys(
                    config.address,
                    old.as_deref(),
                    config.password.as_deref(),
                );
                self.speaker.set_peer(*config, now);
            }
            Command::Apply(desired) => {
                let desired = *desired;
                let old: BTreeMap<IpAddr, String> = self
                    .speaker
                    .peers()
                    .filter_map(|p| Some((p.address, p.password.clone()?)))
                    .collect();
                for (address, password) in &old {
                    if !desired.peers.iter().any(|p| p.address == *address) {
                        self.update_listener_keys(*address, Some(password), None);
                    }
                }
                for peer in &desired.peers {
                    self.update_listener_keys(
                        peer.address,
                        old.get(&peer.address).map(String::as_str),
                        peer.password.as_deref(),
                    );
                }
                self.speaker.reconfigure(desired.speaker, now);
                self.speaker
                    .reconcile(desired.peers, desired.originations, now);
            }
            Command::RemovePeer(address) => {
                let old = self.password_of(address);
                self.speaker.remove_peer(address, now);
                self.update_listener_keys(address, old.as_deref(), None);
            }
            Command::Originate(o) => self.speaker.originate(o, now),
            Command::Withdraw(prefix) => self.speaker.withdraw(prefix, now),
            Command::Status(reply) => {
                let _ = reply.send(StatusReport {
                    now,
                    wall: SystemTime::now(),
                    peers: self.speaker.status(),
                });
            }
            Command::BestPaths(reply) => {
                let _ = reply.send(self.speaker.best_paths());
            }
            Command::Shutdown => {
                let peers: Vec<IpAddr> = self.speaker.peers().map(|p| p.address).collect();
                for peer in peers {
                    self.speaker.stop_peer(peer, now);
                }
                return true;
            }
        }
        false
    }

    fn password_of(&self, peer: IpAddr) -> Option<String> {
        self.speaker.peer_config(peer)?.password.clone()
    }

    /// Connections a peer with a password makes to us need its key on the
    /// listening sockets (accepted sockets inherit it); a password that is
    /// gone is cleared there.
    fn update_listener_keys(&self, peer: IpAddr, old: Option<&str>, new: Option<&str>) {
        if old == new {
            return;
        }
        for listener in &self.listeners {
            // An IPv4 listener never sees an IPv6 peer.
            if peer.to_canonical().is_ipv6() && listener.local_addr().is_ok_and(|a| a.is_ipv4()) {
                continue;
            }
            if let Err(e) = self.sockets.set_md5(listener.as_ref(), peer, new) {
                tracing::warn!(%peer, error = %e, "cannot set the TCP MD5 key on the listener");
            }
        }
    }

    fn attach(&mut self, peer: IpAddr, conn: ConnId, stream: tokio::net::TcpStream) {
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let (wtx, wrx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_loop(peer, conn, read, self.tx.clone()));
        tokio::spawn(write_loop(peer, conn, write, wrx, self.tx.clone()));
        self.connections.insert(
            (peer, conn),
            Connection {
                writer: wtx,
                reader,
            },
        );
    }

    fn detach(&mut self, peer: IpAddr, conn: ConnId) {
        if let Some(c) = self.connections.remove(&(peer, conn)) {
            let _ = c.writer.send(Write::Close);
            c.reader.abort();
        }
        if let Some(pending) = self.connecting.remove(&(peer, conn)) {
            pending.abort();
        }
    }

    fn flush(&mut self, _now: Instant) {
        let mut routes = Vec::new();
        for output in self.speaker.take_outputs() {
            match output {
                Output::Connect { peer, conn } => self.connect(peer, conn),
                Output::Send { peer, conn, bytes } => {
                    if let Some(c) = self.connections.get(&(peer, conn)) {
                        let _ = c.writer.send(Write::Bytes(bytes));
                    }
                }
                Output::Close { peer, conn } => self.detach(peer, conn),
                Output::Route(change) => routes.push(change),
            }
        }
        if !routes.is_empty() {
            let _ = self.sink.send(routes);
        }
    }

    fn connect(&mut self, peer: IpAddr, conn: ConnId) {
        let Some(config) = self.speaker.peer_config(peer) else {
            return;
        };
        let address = SocketAddr::new(peer, config.port);
        let source = config.source_address;
        let password = config.password.clone();
        let timeout = config.connect_retry;
        let sockets = self.sockets.clone();
        let tx = self.tx.clone();
        let task = tokio::spawn(async move {
            let input = match sockets
                .connect(address, source, password.as_deref(), timeout)
                .await
            {
                Ok(stream) => Input::Connected { peer, conn, stream },
                Err(e) => Input::ConnectFailed {
                    peer,
                    conn,
                    reason: e.to_string(),
                },
            };
            let _ = tx.send(input).await;
        });
        self.connecting.insert((peer, conn), task);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

async fn accept_loop(listener: Arc<TcpListener>, tx: mpsc::Sender<Input>) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let Ok(local) = stream.local_addr() else {
                    continue;
                };
                if tx
                    .send(Input::Accepted {
                        stream,
                        remote,
                        local,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a BGP connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// The sink thread: applies batches in order, merging whatever queued up
/// while the previous batch was being applied. When nothing comes for a
/// second it hands the sink an empty batch, so a sink can retry what
/// failed before.
fn run_sink(mut sink: Box<dyn RouteSink>, rx: std::sync::mpsc::Receiver<Vec<RouteChange>>) {
    use std::sync::mpsc::RecvTimeoutError;
    loop {
        let mut batch = match rx.recv_timeout(std::time::Duration::from_secs(1)) {
            Ok(batch) => batch,
            Err(RecvTimeoutError::Timeout) => Vec::new(),
            Err(RecvTimeoutError::Disconnected) => return,
        };
        while let Ok(more) = rx.try_recv() {
            batch.extend(more);
        }
        sink.apply(batch);
    }
}

#[cfg(test)]
mod tests;
