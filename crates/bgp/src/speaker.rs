//! The speaker: every peer's [`Session`], the Loc-RIB, the Adj-RIBs-Out and
//! the routes to install, as one synchronous state machine.
//!
//! Like [`Session`], it does no I/O and reads no clock. The driver (see
//! [`crate::driver`]) reports connections, messages and time; the speaker
//! answers with [`Output`]s: connections to open, bytes to send,
//! connections to close, and changes to the routes the kernel should have.
//! Configuration comes in as values: [`Speaker::set_peer`],
//! [`Speaker::remove_peer`], [`Speaker::originate`], [`Speaker::withdraw`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::attributes::{PathAttributes, Received, announcements, withdrawals};
use crate::export::{ExportTarget, LearnedFilter, export};
use crate::rib::{BestChange, Path, PathSource, Rib, family_of};
use crate::session::{
    ConnId, Event, GracefulRestartConfig, Negotiated, Session, SessionConfig, State,
};
use crate::wire::{
    AsPath, DecodeError, Family, LargeCommunity, Message, Notification, Origin, Update, cease,
};

/// The port BGP listens on.
pub const BGP_PORT: u16 = 179;

/// Settings of the speaker as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerConfig {
    pub local_as: u32,
    pub router_id: Ipv4Addr,
    /// Set when this speaker is a route reflector (what Calico calls
    /// `routeReflectorClusterID`).
    pub cluster_id: Option<Ipv4Addr>,
    /// This node's addresses: the next hop of our routes when a session's
    /// own address is of the other family.
    pub address_v4: Option<Ipv4Addr>,
    pub address_v6: Option<Ipv6Addr>,
}

/// One peer, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// A name for status output (BIRD's protocol name, e.g.
    /// `Mesh_10_0_0_2`, `Node_10_0_0_9`, `Global_10_0_0_9`).
    pub name: String,
    pub address: IpAddr,
    /// The peer's port.
    pub port: u16,
    pub remote_as: u32,
    /// The local address to connect from.
    pub source_address: Option<IpAddr>,
    /// TCP MD5 signature key (RFC 2385).
    pub password: Option<String>,
    pub passive: bool,
    pub hold_time: u16,
    pub keepalive_time: Option<u16>,
    pub connect_retry: Duration,
    pub graceful_restart: Option<GracefulRestartConfig>,
    pub families: Vec<Family>,
    pub rr_client: bool,
    pub keep_next_hop: bool,
    pub next_hop_self: bool,
    pub learned: LearnedFilter,
}

impl PeerConfig {
    /// A peer with the defaults: active, port 179, hold time 90 s, graceful
    /// restart, the unicast family of its address.
    pub fn new(address: IpAddr, remote_as: u32) -> Self {
        PeerConfig {
            name: format!("peer_{}", address.to_string().replace(['.', ':'], "_")),
            address,
            port: BGP_PORT,
            remote_as,
            source_address: None,
            password: None,
            passive: false,
            hold_time: 90,
            keepalive_time: None,
            connect_retry: Duration::from_secs(5),
            graceful_restart: Some(GracefulRestartConfig::default()),
            families: vec![Family::unicast_of(address)],
            rr_client: false,
            keep_next_hop: false,
            next_hop_self: false,
            learned: LearnedFilter::All,
        }
    }

    fn session_config(&self, speaker: &SpeakerConfig) -> SessionConfig {
        SessionConfig {
            local_as: speaker.local_as,
            remote_as: self.remote_as,
            local_id: speaker.router_id,
            hold_time: self.hold_time,
            keepalive_time: self.keepalive_time,
            connect_retry: self.connect_retry,
            passive: self.passive,
            families: self.families.clone(),
            graceful_restart: self.graceful_restart.clone(),
        }
    }
}

/// A prefix this speaker originates, with the communities Calico attaches
/// to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origination {
    pub prefix: IpNet,
    pub communities: Vec<u32>,
    pub large_communities: Vec<LargeCommunity>,
    pub local_pref: Option<u32>,
}

impl Origination {
    pub fn new(prefix: IpNet) -> Self {
        Origination {
            prefix: prefix.trunc(),
            communities: Vec::new(),
            large_communities: Vec::new(),
            local_pref: None,
        }
    }
}

/// A change to the routes the kernel should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteChange {
    /// Route `prefix` via `next_hop` (replacing any route we installed).
    Replace {
        prefix: IpNet,
        next_hop: IpAddr,
        /// For an IPv6 next hop: the link-local one, usable when the global
        /// one is not on a connected network.
        link_local: Option<Ipv6Addr>,
        /// The peer the route came from.
        peer: IpAddr,
    },
    Remove {
        prefix: IpNet,
    },
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a TCP connection to `peer` and report back with `conn`.
    Connect {
        peer: IpAddr,
        conn: ConnId,
    },
    Send {
        peer: IpAddr,
        conn: ConnId,
        bytes: Vec<u8>,
    },
    /// Close after flushing what was sent before.
    Close {
        peer: IpAddr,
        conn: ConnId,
    },
    Route(RouteChange),
}

/// One peer's state, for status output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub name: String,
    pub address: IpAddr,
    pub remote_as: u32,
    pub state: State,
    /// When the state last changed.
    pub since: Option<Instant>,
    /// The last error, when not established.
    pub info: Option<String>,
    pub routes_received: usize,
    pub routes_sent: usize,
}

#[derive(Debug)]
struct Peer {
    config: PeerConfig,
    session: Session,
    /// Local address of each connection.
    locals: HashMap<ConnId, IpAddr>,
    /// The established connection and what was negotiated on it.
    established: Option<(ConnId, Negotiated, IpAddr)>,
    /// Prefixes this peer announced (its Adj-RIB-In, attributes in the RIB).
    adj_in: HashSet<IpNet>,
    /// What we announced to it.
    adj_out: HashMap<IpNet, Arc<PathAttributes>>,
}

/// The speaker state machine. See the module documentation.
#[derive(Debug)]
pub struct Speaker {
    config: SpeakerConfig,
    peers: BTreeMap<IpAddr, Peer>,
    rib: Rib,
    originated: BTreeMap<IpNet, Origination>,
    /// Next hop of every route we asked the kernel for.
    installed: HashMap<IpNet, IpAddr>,
    outputs: Vec<Output>,
}

impl Speaker {
    pub fn new(config: SpeakerConfig) -> Self {
        Speaker {
            config,
            peers: BTreeMap::new(),
            rib: Rib::new(),
            originated: BTreeMap::new(),
            installed: HashMap::new(),
            outputs: Vec::new(),
        }
    }

    pub fn config(&self) -> &SpeakerConfig {
        &self.config
    }

    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    pub fn peer_config(&self, address: IpAddr) -> Option<&PeerConfig> {
        self.peers.get(&address).map(|p| &p.config)
    }

    pub fn peers(&self) -> impl Iterator<Item = &PeerConfig> {
        self.peers.values().map(|p| &p.config)
    }

    /// The best path to every prefix.
    pub fn best_paths(&self) -> BTreeMap<IpNet, Path> {
        self.rib.iter_best().map(|(p, b)| (*p, b.clone())).collect()
    }

    /// The routes the kernel should have, as the speaker last asked.
    pub fn installed(&self) -> &HashMap<IpNet, IpAddr> {
        &self.installed
    }

    /// What was announced to `peer`.
    pub fn advertised(&self, peer: IpAddr) -> BTreeMap<IpNet, Arc<PathAttributes>> {
        self.peers
            .get(&peer)
            .map(|p| p.adj_out.iter().map(|(k, v)| (*k, v.clone())).collect())
            .unwrap_or_default()
    }

    pub fn status(&self) -> Vec<PeerStatus> {
        self.peers
            .values()
            .map(|p| PeerStatus {
                name: p.config.name.clone(),
                address: p.config.address,
                remote_as: p.config.remote_as,
                state: p.session.state(),
                since: p.session.state_since(),
                info: p.session.last_error().map(str::to_string),
                routes_received: p.adj_in.len(),
                routes_sent: p.adj_out.len(),
            })
            .collect()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter_map(|p| p.session.next_deadline())
            .min()
    }

    /// Adds a peer, or changes one. A change to anything the session
    /// negotiates restarts it (Cease, "other configuration change").
    pub fn set_peer(&mut self, config: PeerConfig, now: Instant) {
        let address = config.address;
        if let Some(existing) = self.peers.get_mut(&address) {
            if existing.config == config {
                return;
            }
            let restart = existing.config.session_config(&self.config)
                != config.session_config(&self.config)
                || existing.config.port != config.port
                || existing.config.source_address != config.source_address
                || existing.config.password != config.password;
            existing.config = config;
            if restart {
                self.restart_peer(address, cease::OTHER_CONFIGURATION_CHANGE, now);
            } else {
                self.refresh_exports(address);
            }
            return;
        }
        let session = Session::new(config.session_config(&self.config));
        self.peers.insert(
            address,
            Peer {
                config,
                session,
                locals: HashMap::new(),
                established: None,
                adj_in: HashSet::new(),
                adj_out: HashMap::new(),
            },
        );
        if let Some(peer) = self.peers.get_mut(&address) {
            peer.session.start(now);
        }
        self.pump(address, now);
    }

    /// Removes a peer: Cease "peer de-configured", and its routes go.
    pub fn remove_peer(&mut self, address: IpAddr, now: Instant) {
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        peer.session
            .stop(Notification::cease(cease::PEER_DECONFIGURED), now);
        self.pump(address, now);
        if let Some(peer) = self.peers.remove(&address) {
            let mut changes = Vec::new();
            for prefix in peer.adj_in {
                if let Some(c) = self.rib.remove(&prefix, Some(address)) {
                    changes.push((prefix, c));
                }
            }
            self.propagate(changes);
        }
    }

    /// Makes the configured peers and originated prefixes exactly these:
    /// missing ones are added, changed ones updated, others removed.
    pub fn reconcile(
        &mut self,
        peers: Vec<PeerConfig>,
        originations: Vec<Origination>,
        now: Instant,
    ) {
        let wanted: HashSet<IpAddr> = peers.iter().map(|p| p.address).collect();
        let gone: Vec<IpAddr> = self
            .peers
            .keys()
            .filter(|a| !wanted.contains(a))
            .copied()
            .collect();
        for address in gone {
            self.remove_peer(address, now);
        }
        for peer in peers {
            self.set_peer(peer, now);
        }
        let keep: HashSet<IpNet> = originations.iter().map(|o| o.prefix.trunc()).collect();
        let stale: Vec<IpNet> = self
            .originated
            .keys()
            .filter(|p| !keep.contains(p))
            .copied()
            .collect();
        for prefix in stale {
            self.withdraw(prefix, now);
        }
        for origination in originations {
            self.originate(origination, now);
        }
    }

    /// Changes the speaker's own settings (AS, router id, cluster id,
    /// addresses). Every session restarts (Cease, "other configuration
    /// change"); peers and originations are kept.
    pub fn reconfigure(&mut self, config: SpeakerConfig, now: Instant) {
        if config == self.config {
            return;
        }
        let peers: Vec<PeerConfig> = self.peers.values().map(|p| p.config.clone()).collect();
        let originations: Vec<Origination> = self.originated.values().cloned().collect();
        for address in peers.iter().map(|p| p.address).collect::<Vec<_>>() {
            if let Some(peer) = self.peers.get_mut(&address) {
                peer.session
                    .stop(Notification::cease(cease::OTHER_CONFIGURATION_CHANGE), now);
            }
            self.pump(address, now);
            self.remove_peer(address, now);
        }
        for prefix in self.originated.keys().copied().collect::<Vec<_>>() {
            self.withdraw(prefix, now);
        }
        self.config = config;
        self.reconcile(peers, originations, now);
    }

    /// Stops a peer's session (Cease, administrative shutdown) but keeps
    /// it configured; it stays idle.
    pub fn stop_peer(&mut self, address: IpAddr, now: Instant) {
        if let Some(peer) = self.peers.get_mut(&address) {
            peer.session
                .stop(Notification::cease(cease::ADMINISTRATIVE_SHUTDOWN), now);
            self.pump(address, now);
        }
    }

    fn restart_peer(&mut self, address: IpAddr, subcode: u8, now: Instant) {
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        peer.session.stop(Notification::cease(subcode), now);
        self.pump(address, now);
        if let Some(peer) = self.peers.get_mut(&address) {
            peer.session = Session::new(peer.config.session_config(&self.config));
            peer.session.start(now);
        }
        self.pump(address, now);
    }

    /// Originates (or updates) a prefix.
    pub fn originate(&mut self, origination: Origination, _now: Instant) {
        let prefix = origination.prefix;
        if self.originated.get(&prefix) == Some(&origination) {
            return;
        }
        let attrs = PathAttributes {
            origin: Origin::Igp,
            as_path: AsPath::default(),
            local_pref: origination.local_pref,
            communities: origination.communities.clone(),
            large_communities: origination.large_communities.clone(),
            ..PathAttributes::default()
        };
        self.originated.insert(prefix, origination);
        let path = Path {
            attrs: Arc::new(attrs),
            source: PathSource::local(self.config.router_id),
            stale: false,
        };
        let changes: Vec<_> = self
            .rib
            .insert(prefix, path)
            .map(|c| (prefix, c))
            .into_iter()
            .collect();
        self.propagate(changes);
    }

    /// Stops originating a prefix.
    pub fn withdraw(&mut self, prefix: IpNet, _now: Instant) {
        let prefix = prefix.trunc();
        if self.originated.remove(&prefix).is_none() {
            return;
        }
        let changes: Vec<_> = self
            .rib
            .remove(&prefix, None)
            .map(|c| (prefix, c))
            .into_iter()
            .collect();
        self.propagate(changes);
    }

    /// The prefixes this speaker originates.
    pub fn originations(&self) -> impl Iterator<Item = &Origination> {
        self.originated.values()
    }

    /// A TCP connection came in from `remote` on our address `local`.
    /// Returns the connection id, or `None` to refuse it (unknown peer).
    pub fn accept(&mut self, remote: IpAddr, local: IpAddr, now: Instant) -> Option<ConnId> {
        let peer = self.peers.get_mut(&remote)?;
        let conn = peer.session.accept(now)?;
        peer.locals.insert(conn, local);
        self.pump(remote, now);
        Some(conn)
    }

    pub fn connected(&mut self, peer: IpAddr, conn: ConnId, local: IpAddr, now: Instant) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.locals.insert(conn, local);
            p.session.connected(conn, now);
            self.pump(peer, now);
        }
    }

    pub fn connect_failed(&mut self, peer: IpAddr, conn: ConnId, reason: &str, now: Instant) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.session.connect_failed(conn, reason, now);
            self.pump(peer, now);
        }
    }

    pub fn closed(&mut self, peer: IpAddr, conn: ConnId, reason: &str, now: Instant) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.session.closed(conn, reason, now);
            self.pump(peer, now);
        }
    }

    pub fn message(&mut self, peer: IpAddr, conn: ConnId, message: Message, now: Instant) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.session.message(conn, message, now);
            self.pump(peer, now);
        }
    }

    pub fn decode_error(&mut self, peer: IpAddr, conn: ConnId, error: DecodeError, now: Instant) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.session.decode_error(conn, error, now);
            self.pump(peer, now);
        }
    }

    pub fn tick(&mut self, now: Instant) {
        let due: Vec<IpAddr> = self
            .peers
            .iter()
            .filter(|(_, p)| p.session.next_deadline().is_some_and(|t| t <= now))
            .map(|(a, _)| *a)
            .collect();
        for address in due {
            if let Some(p) = self.peers.get_mut(&address) {
                p.session.tick(now);
            }
            self.pump(address, now);
        }
    }

    /// Handles what a session asked for.
    fn pump(&mut self, address: IpAddr, now: Instant) {
        loop {
            let Some(peer) = self.peers.get_mut(&address) else {
                return;
            };
            let events = peer.session.take_events();
            if events.is_empty() {
                return;
            }
            for event in events {
                self.on_event(address, event, now);
            }
        }
    }

    fn on_event(&mut self, address: IpAddr, event: Event, _now: Instant) {
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        match event {
            Event::Connect { conn } => self.outputs.push(Output::Connect {
                peer: address,
                conn,
            }),
            Event::Send { conn, message } => {
                let four = peer
                    .established
                    .as_ref()
                    .filter(|(c, _, _)| *c == conn)
                    .is_none_or(|(_, n, _)| n.four_octet_as);
                match message.to_bytes(four) {
                    Ok(bytes) => self.outputs.push(Output::Send {
                        peer: address,
                        conn,
                        bytes,
                    }),
                    Err(e) => {
                        tracing::error!(peer = %address, error = %e, "cannot encode a message")
                    }
                }
            }
            Event::Close { conn } => {
                peer.locals.remove(&conn);
                self.outputs.push(Output::Close {
                    peer: address,
                    conn,
                });
            }
            Event::Established(negotiated) => {
                let Some(conn) = peer.session.established_conn() else {
                    return;
                };
                let local = peer
                    .locals
                    .get(&conn)
                    .copied()
                    .unwrap_or(IpAddr::V4(self.config.router_id));
                tracing::info!(peer = %address, name = %peer.config.name, "session established");
                peer.established = Some((conn, negotiated.clone(), local));
                peer.adj_out.clear();
                for family in negotiated.families.clone() {
                    self.send_table(address, family);
                    self.send_updates(address, vec![Update::end_of_rib_marker(family)]);
                }
            }
            Event::Down {
                reason,
                graceful,
                stale_for,
            } => {
                tracing::info!(peer = %address, %reason, ?graceful, ?stale_for, "session down");
                peer.established = None;
                peer.adj_out.clear();
                let (keep, drop): (Vec<IpNet>, Vec<IpNet>) = peer
                    .adj_in
                    .iter()
                    .partition(|p| graceful.contains(&family_of(p)));
                for p in &drop {
                    peer.adj_in.remove(p);
                }
                let mut changes = self.rib.mark_stale(address, &keep);
                for prefix in drop {
                    if let Some(c) = self.rib.remove(&prefix, Some(address)) {
                        changes.push((prefix, c));
                    }
                }
                self.propagate(changes);
            }
            Event::Routes(received) => self.import(address, received),
            Event::RouteRefresh(family) => {
                if let Some(peer) = self.peers.get_mut(&address) {
                    peer.adj_out.retain(|p, _| family_of(p) != family);
                }
                self.send_table(address, family);
            }
            Event::FlushStale(families) => {
                let stale: Vec<IpNet> = peer
                    .adj_in
                    .iter()
                    .filter(|p| families.contains(&family_of(p)) && self.rib.is_stale(p, address))
                    .copied()
                    .collect();
                for p in &stale {
                    peer.adj_in.remove(p);
                }
                let changes = stale
                    .into_iter()
                    .filter_map(|p| self.rib.remove(&p, Some(address)).map(|c| (p, c)))
                    .collect();
                self.propagate(changes);
            }
        }
    }

    /// Applies a received UPDATE: import checks, RIB, then what follows.
    fn import(&mut self, address: IpAddr, received: Received) {
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        let Some((_, negotiated, _)) = &peer.established else {
            return;
        };
        let source = PathSource {
            peer: Some(address),
            external: peer.config.remote_as != self.config.local_as,
            router_id: negotiated.remote_id,
            rr_client: peer.config.rr_client,
        };
        let mut changes = Vec::new();
        for prefix in received.withdrawn {
            if peer.adj_in.remove(&prefix)
                && let Some(c) = self.rib.remove(&prefix, Some(address))
            {
                changes.push((prefix, c));
            }
        }
        for (attrs, prefixes) in received.announced {
            let attrs = match accept_path(&self.config, &source, attrs) {
                Some(a) => a,
                None => {
                    // Rejected: as if withdrawn.
                    for prefix in prefixes {
                        if peer.adj_in.remove(&prefix)
                            && let Some(c) = self.rib.remove(&prefix, Some(address))
                        {
                            changes.push((prefix, c));
                        }
                    }
                    continue;
                }
            };
            for prefix in prefixes {
                peer.adj_in.insert(prefix);
                let path = Path {
                    attrs: attrs.clone(),
                    source,
                    stale: false,
                };
                if let Some(c) = self.rib.insert(prefix, path) {
                    changes.push((prefix, c));
                }
            }
        }
        self.propagate(changes);
    }

    /// Brings the kernel routes and every established peer's Adj-RIB-Out in
    /// line with changed best paths.
    fn propagate(&mut self, changes: Vec<(IpNet, BestChange)>) {
        self.propagate_to(changes, None);
    }

    /// [`Speaker::propagate`], exports limited to `only` when given.
    fn propagate_to(&mut self, changes: Vec<(IpNet, BestChange)>, only: Option<IpAddr>) {
        if changes.is_empty() {
            return;
        }
        for (prefix, change) in &changes {
            let want = match change {
                BestChange::New(path) if !path.is_local() => path
                    .source
                    .peer
                    .zip(path.attrs.next_hop)
                    .map(|(peer, nh)| (peer, nh, path.attrs.link_local_next_hop)),
                _ => None,
            };
            match want {
                Some((peer, next_hop, link_local)) => {
                    if self.installed.insert(*prefix, next_hop) != Some(next_hop) {
                        self.outputs.push(Output::Route(RouteChange::Replace {
                            prefix: *prefix,
                            next_hop,
                            link_local,
                            peer,
                        }));
                    }
                }
                None => {
                    if self.installed.remove(prefix).is_some() {
                        self.outputs
                            .push(Output::Route(RouteChange::Remove { prefix: *prefix }));
                    }
                }
            }
        }
        let targets: Vec<IpAddr> = self
            .peers
            .iter()
            .filter(|(a, p)| p.established.is_some() && only.is_none_or(|o| o == **a))
            .map(|(a, _)| *a)
            .collect();
        for address in targets {
            let Some(target) = self.export_target(address) else {
                continue;
            };
            let Some(peer) = self.peers.get_mut(&address) else {
                continue;
            };
            let families = peer
                .established
                .as_ref()
                .map(|(_, n, _)| n.families.clone())
                .unwrap_or_default();
            let mut announce: HashMap<Arc<PathAttributes>, Vec<IpNet>> = HashMap::new();
            let mut withdraw: Vec<IpNet> = Vec::new();
            for (prefix, change) in &changes {
                if !families.contains(&family_of(prefix)) {
                    continue;
                }
                let out = match change {
                    BestChange::New(path) => export(prefix, path, &target),
                    BestChange::Gone => None,
                };
                match out {
                    Some(attrs) => {
                        if peer.adj_out.get(prefix) != Some(&attrs) {
                            peer.adj_out.insert(*prefix, attrs.clone());
                            announce.entry(attrs).or_default().push(*prefix);
                        }
                    }
                    None => {
                        if peer.adj_out.remove(prefix).is_some() {
                            withdraw.push(*prefix);
                        }
                    }
                }
            }
            let updates = Self::pack(announce, withdraw, &families, Self::four_octet(peer));
            self.send_updates(address, updates);
        }
    }

    fn four_octet(peer: &Peer) -> bool {
        peer.established
            .as_ref()
            .is_none_or(|(_, n, _)| n.four_octet_as)
    }

    fn pack(
        announce: HashMap<Arc<PathAttributes>, Vec<IpNet>>,
        withdraw: Vec<IpNet>,
        families: &[Family],
        four_octet: bool,
    ) -> Vec<Update> {
        let mut updates = Vec::new();
        for family in families {
            let gone: Vec<IpNet> = withdraw
                .iter()
                .filter(|p| family_of(p) == *family)
                .copied()
                .collect();
            updates.extend(withdrawals(*family, &gone));
        }
        for (attrs, prefixes) in announce {
            for family in families {
                let mine: Vec<IpNet> = prefixes
                    .iter()
                    .filter(|p| family_of(p) == *family)
                    .copied()
                    .collect();
                updates.extend(announcements(&attrs, *family, &mine, four_octet));
            }
        }
        updates
    }

    /// Sends the whole table of `family` to a newly established (or
    /// refreshing) peer.
    fn send_table(&mut self, address: IpAddr, family: Family) {
        let Some(target) = self.export_target(address) else {
            return;
        };
        let mut announce: HashMap<Arc<PathAttributes>, Vec<IpNet>> = HashMap::new();
        let Some(peer) = self.peers.get_mut(&address) else {
            return;
        };
        for (prefix, path) in self.rib.iter_best() {
            if family_of(prefix) != family {
                continue;
            }
            if let Some(attrs) = export(prefix, path, &target) {
                peer.adj_out.insert(*prefix, attrs.clone());
                announce.entry(attrs).or_default().push(*prefix);
            }
        }
        for prefixes in announce.values_mut() {
            prefixes.sort();
        }
        let updates = Self::pack(announce, Vec::new(), &[family], Self::four_octet(peer));
        self.send_updates(address, updates);
    }

    fn send_updates(&mut self, address: IpAddr, updates: Vec<Update>) {
        let Some(peer) = self.peers.get(&address) else {
            return;
        };
        let Some((conn, negotiated, _)) = &peer.established else {
            return;
        };
        for update in updates {
            match Message::Update(update).to_bytes(negotiated.four_octet_as) {
                Ok(bytes) => self.outputs.push(Output::Send {
                    peer: address,
                    conn: *conn,
                    bytes,
                }),
                Err(e) => tracing::error!(peer = %address, error = %e, "cannot encode an UPDATE"),
            }
        }
    }

    fn export_target(&self, address: IpAddr) -> Option<ExportTarget> {
        let peer = self.peers.get(&address)?;
        let (_, _, local) = peer.established.as_ref()?;
        let (v4, v6) = match local {
            IpAddr::V4(v4) => (Some(*v4), self.config.address_v6),
            IpAddr::V6(v6) => (self.config.address_v4, Some(*v6)),
        };
        Some(ExportTarget {
            peer: address,
            local_as: self.config.local_as,
            remote_as: peer.config.remote_as,
            router_id: self.config.router_id,
            cluster_id: self.config.cluster_id,
            rr_client: peer.config.rr_client,
            next_hop_v4: v4,
            next_hop_v6: v6,
            keep_next_hop: peer.config.keep_next_hop,
            next_hop_self: peer.config.next_hop_self,
            learned: peer.config.learned.clone(),
        })
    }

    /// Re-evaluates everything sent to `address` (after an export setting
    /// changed).
    fn refresh_exports(&mut self, address: IpAddr) {
        let Some(peer) = self.peers.get(&address) else {
            return;
        };
        let Some((_, negotiated, _)) = &peer.established else {
            return;
        };
        let families = negotiated.families.clone();
        let changes: Vec<(IpNet, BestChange)> = self
            .rib
            .iter_best()
            .map(|(p, b)| (*p, BestChange::New(b.clone())))
            .chain(
                peer.adj_out
                    .keys()
                    .filter(|p| self.rib.best(p).is_none())
                    .map(|p| (*p, BestChange::Gone)),
            )
            .filter(|(p, _)| families.contains(&family_of(p)))
            .collect();
        self.propagate_to(changes, Some(address));
    }
}

/// Import checks: AS loop for eBGP, ORIGINATOR_ID and CLUSTER_LIST loops
/// for iBGP (RFC 4456 §8); LOCAL_PREF from eBGP is ignored.
fn accept_path(
    config: &SpeakerConfig,
    source: &PathSource,
    attrs: Arc<PathAttributes>,
) -> Option<Arc<PathAttributes>> {
    if source.external {
        if attrs.as_path.contains(config.local_as) {
            return None;
        }
        if attrs.local_pref.is_some() {
            let mut a = (*attrs).clone();
            a.local_pref = None;
            return Some(Arc::new(a));
        }
    } else {
        if attrs.originator_id == Some(config.router_id) {
            return None;
        }
        if let Some(cluster) = config.cluster_id
            && attrs.cluster_list.contains(&cluster)
        {
            return None;
        }
    }
    Some(attrs)
}

#[cfg(test)]
mod tests;
