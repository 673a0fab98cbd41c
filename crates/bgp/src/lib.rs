//! calico-bgp: the BGP speaker of calico-rs, in place of the BIRD daemon
//! and the confd templates Calico renders for it.
//!
//! # What it owns
//!
//! - [`wire`]: the BGP-4 message format. OPEN with capabilities
//!   (multiprotocol, route refresh, graceful restart, four-octet AS),
//!   UPDATE with the RFC 4271 attributes, communities, large communities,
//!   route reflection attributes, MP_REACH/MP_UNREACH and AS4_PATH;
//!   NOTIFICATION, KEEPALIVE, ROUTE-REFRESH. Malformed input becomes the
//!   NOTIFICATION the RFCs prescribe, never a panic.
//! - [`attributes`]: path attributes as the RIB holds them, and packing
//!   them into UPDATEs.
//! - [`session`]: the RFC 4271 state machine of one peer, with time passed
//!   in: timers, collision resolution, capability negotiation, graceful
//!   restart (as the helper of a restarting peer).
//! - [`rib`], [`export`], [`speaker`]: best-path selection, iBGP/eBGP and
//!   route reflection rules, and the speaker tying peers, RIB and kernel
//!   routes together, still without I/O.
//! - [`config`]: Calico resources (Node, BGPConfiguration, BGPPeer, IPPool)
//!   to this node's peers and exports, as confd computes them.
//! - [`status`]: `calicoctl node status` output.
//! - [`driver`] and [`sink`]: the only I/O. A tokio event loop running the
//!   speaker over TCP, and the kernel side (routes in a network namespace,
//!   under a protocol number of ours).
//!
//! Everything above `driver` and `sink` is pure: no sockets, no clock, no
//! tokio, so it is tested with injected time and in-memory networks of
//! speakers (see `speaker/tests.rs`); the driver is tested over loopback,
//! and `tests/` runs it against BIRD 2, GoBGP and FRR in network
//! namespaces.
//!
//! # What it must not do
//!
//! Decide Calico policy beyond what confd's BGP processor decides, enter
//! network namespaces itself (calico-netlink does that), or use `unsafe`.
//!
//! # Two decisions worth knowing
//!
//! **Its own codec.** `netgauze-bgp-pkt` was evaluated as the wire codec.
//! It decodes what we need, but its mapping from parse errors to
//! NOTIFICATIONs is coarser than RFC 4271 §6.3 asks: an ORIGIN or
//! NEXT_HOP of the wrong length reports Invalid ORIGIN / Invalid NEXT_HOP
//! instead of Attribute Length Error, LOCAL_PREF errors come out as
//! Optional Attribute Error, trailing bytes as a header error, and the Data
//! field (which must carry the offending attribute) is always empty. Those
//! codes are what a peer logs and an operator reads, so the codec here is
//! hand-written for the unicast families Calico uses, checked byte for
//! byte against messages captured from BIRD, GoBGP and FRR, property-tested
//! and fuzzed (`fuzz/`).
//!
//! **TCP MD5 from calico-netlink.** BGP passwords are the `TCP_MD5SIG`
//! socket option, which takes a C struct through `setsockopt`. Neither
//! `socket2` nor `nix` offers it, and writing it needs `unsafe`, which this
//! crate forbids; [`calico_netlink::tcp_md5`] (the crate allowed `unsafe`)
//! provides it as a safe call, and the driver uses it directly: a peer's
//! password goes on its outgoing sockets and on the listeners, so every
//! program embedding the speaker gets passwords without wiring anything. A
//! key the kernel refuses (longer than 80 bytes, say) becomes that peer's
//! error in its status, and the session is never tried unauthenticated.
//!
//! # Where to start
//!
//! [`config::desired`] for how resources become peers; [`driver::Driver`]
//! for running a speaker; [`speaker::Speaker`] for the logic.

pub mod attributes;
pub mod config;
pub mod driver;
pub mod export;
pub mod rib;
pub mod session;
pub mod sink;
pub mod speaker;
pub mod status;
pub mod wire;

/// An error and its sources, one line: "outer: inner: root".
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
