//! calico-bgp: the BGP speaker of calico-rs.
//!
//! Owns the wire format, the per-peer session state machine, the RIBs and
//! the driver that runs sessions over TCP. Work in progress.

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
