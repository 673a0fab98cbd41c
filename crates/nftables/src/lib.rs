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
//! # Why nft's script in and JSON out
//!
//! Writes go to nft as script text, reads come from `nft -n -j list
//! table`. This is what Calico's own nftables dataplane and kube-proxy do
//! (through knftables), and it is the interface the nftables project keeps
//! stable. Two drivers speak it: [`NftCli`] runs the `nft` program, and
//! [`NftLib`] calls the library the program is made of (libnftables, loaded
//! at run time, on a thread inside the target namespace) with the same
//! input, output and diagnostics, without a process start per transaction:
//! a one-chain update costs a few milliseconds instead of tens.
//! [`NftDriver`] sends small transactions through the library when it can
//! be loaded, and large ones and listings through the program, so that
//! nft's memory for a whole table never stays in the caller's heap. Driving netlink directly was considered
//! and rejected: reading the kernel back means decoding its register-level
//! bytecode into matches again (nft's largest component), and the Rust
//! crates for it are either bindings to libnftnl or young pure-netlink
//! crates without that decoder. Measured here (see `bench/RESULTS.md`),
//! a chain update in a table of 500 chains and 10,000 elements costs
//! within 1.5x of the kernel's commit of one chain in an otherwise empty
//! table, and an element update within about 2x of its floor, except in
//! tables with large interval sets (below), where a netlink writer for
//! element-only transactions would pay off.
//!
//! Script text rather than JSON for writes: nft reports errors with a line
//! and column, and with one statement per line the line is the statement
//! (see [`reconcile::Rejection`], which also quotes the element nft
//! pointed at); JSON input errors carry no position. JSON for reads, with
//! `-n` so protocols, ICMP types and connection states come back as
//! numbers (no name tables, nothing depending on `/etc/protocols`): it is
//! nft's machine interface, and the parser covers exactly the subset the
//! model renders. The `nftables` crate (a well-kept serde model of the
//! whole JSON schema) was considered; it would still need a translation
//! into this typed model, so the small parser over `serde_json::Value` is
//! less code than the dependency.
//!
//! # Canonical forms
//!
//! nft stores some things differently from how they are written: an
//! anonymous set of adjacent prefixes is merged; a one-element anonymous
//! set becomes a plain value; `meta l4proto tcp th dport 80` is listed as
//! `tcp dport 80`; `tcp dport 80 tcp sport 1` becomes one comparison listed
//! as `tcp sport 1 tcp dport 80`. The model admits only the forms nft lists
//! back, so that a ruleset read from the kernel equals the one applied and
//! a repair changes nothing when nothing drifted: [`Rhs::any_of`] and
//! [`Set::with_elements`] produce them, and [`Ruleset::validate`] explains
//! what to write instead of anything else. One rewrite changes meaning and
//! is refused for that reason: nft 1.0.6 merges `tcp sport != 1 tcp dport
//! != 2` into a test that matches unless both are equal. A property test
//! applies thousands of random rules to a real kernel and reads them back.
//!
//! # Cost of an update
//!
//! The reconciler remembers what it applied and diffs against that: an
//! update is one nft run and no listing. Chains, sets and maps are shared
//! between rulesets through `Arc`; what a new desired ruleset shares with
//! the applied one is neither validated again, nor compared, nor copied,
//! so a generator that keeps unchanged chains as they were (calico-dataplane's
//! `Generator`) pays in proportion to the change, not to the table. nft 1.0.6 fetches the elements of
//! every interval set in the table before any element update, so a table
//! with 10,000 CIDRs in an interval set pays for that listing on each
//! element change, while 10,000 addresses in a plain (hash) set do not.
//! Generators should put single addresses in sets without the interval
//! flag (as Calico's `hash:ip` sets) and keep interval sets for CIDRs.
//!
//! # For the generator
//!
//! Build the [`Ruleset`] with the constructors ([`Rule::new`] and its
//! builder methods, [`Rhs::any_of`], [`Set::with_elements`]), check it with
//! [`Ruleset::validate`], and golden-test it as text with
//! `Transaction::create(&ruleset).render()`: that is exactly the script the
//! reconciler sends for a fresh node, one statement per line, in a
//! deterministic order.

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
pub use nft::{BlockingNft, Nft, NftCli, NftCommand, NftDriver, NftError, NftLib};
pub use parse::{Observed, Unreadable};
pub use reconcile::{ReconcileError, Reconciler, Rejection, Report};
pub use transaction::{Op, Transaction};
pub use validate::Problem;
