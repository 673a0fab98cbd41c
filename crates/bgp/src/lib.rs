//! calico-bgp: the BGP speaker of calico-rs.
//!
//! Owns the wire format, the per-peer session state machine, the RIBs and
//! the driver that runs sessions over TCP. Work in progress.

pub mod attributes;
pub mod export;
pub mod rib;
pub mod session;
pub mod speaker;
pub mod wire;
