//! calico-nftables: the agent's nftables state as a value, and the driver
//! that makes the kernel match it.
//!
//! Owns: the value model of the tables the agent owns ([`Ruleset`]: tables,
//! base and regular chains, rules as a small typed AST, named sets and
//! verdict maps), its rendering to nft's script syntax, reading the
//! kernel's state back from nft's JSON listing ([`parse`]), the minimal
//! [`Transaction`] between two rulesets ([`Transaction::diff`]), and the
//! [`Reconciler`] that applies it.
//!
//! Must not: decide policy (the generator that turns policy into a
//! `Ruleset` lives elsewhere and never touches the kernel); read or write
//! tables it does not own; leave the kernel half-updated (every change is
//! one `nft -f` transaction, all or nothing).
//!
//! Where to start: build a [`Ruleset`] from [`Table`], [`Chain`], [`Rule`],
//! [`Set`] and [`Map`]; check it with [`Ruleset::validate`]; see what would
//! be sent with [`Transaction::diff`] and [`Transaction::render`]; drive the
//! kernel with [`Reconciler`] ([`Reconciler::apply_blocking`] from a
//! dedicated thread or `spawn_blocking`, or the async methods with
//! `TokioNft` under the `tokio` feature).
//!
//! # Why the `nft` program, and why script in and JSON out
//!
//! Writes go through `nft -f -` as script text, reads through
//! `nft -n -j list table`. This is what Calico's own nftables dataplane
//! and kube-proxy do (through knftables), and it is the interface the
//! nftables project keeps stable. Driving netlink directly was considered
//! and rejected: reading the kernel back means decoding its register-level
//! bytecode into matches again (nft's largest component), and the Rust
//! crates for it are either bindings to libnftnl or young pure-netlink
//! crates without that decoder. Measured on the project's machines, the
//! cost of an nft run is dominated by the kernel's transaction commit and
//! nft's cache fill, which a netlink client would pay too (see
//! `bench/RESULTS.md`).
//!
//! Script text rather than JSON for writes: nft reports errors with a line
//! and column, and with one statement per line the line is the statement
//! (see [`reconcile::Rejection`]); JSON input errors carry no position.
//! JSON for reads, with `-n` so numbers are printed as numbers: it is
//! nft's machine interface, and the model's parser covers exactly the
//! subset the model renders. The `nftables` crate (a serde model of the
//! whole JSON schema) was considered; it would still need a translation
//! into this typed model, so the small parser over `serde_json::Value` is
//! less code than the dependency.
//!
//! # Canonical forms
//!
//! nft stores some things differently from how they are written (an
//! anonymous set of adjacent prefixes is merged; `meta l4proto tcp th
//! dport 80` is listed as `tcp dport 80`). The model admits only the forms
//! nft lists back, so that a ruleset read from the kernel equals the one
//! applied and a repair changes nothing when nothing drifted;
//! [`Ruleset::validate`] explains what to write instead.

pub mod diff;
pub mod model;
pub mod nft;
pub mod parse;
pub mod reconcile;
pub mod render;
pub mod transaction;
pub mod validate;

pub use model::{
    BaseChain, Chain, ChainType, CtState, DataType, Family, Hook, IpFamily, Key, Log, Map, Match,
    Policy, PortProto, Rhs, Rule, Ruleset, Set, Statement, Table, TableId, Value, Verdict,
};
#[cfg(feature = "tokio")]
pub use nft::TokioNft;
pub use nft::{Nft, NftCli, NftCommand, NftError};
pub use parse::{Observed, Unreadable};
pub use reconcile::{ReconcileError, Reconciler, Rejection, Report};
pub use transaction::{Op, Transaction};
pub use validate::Problem;
