//! How the plugin binaries are linked. A runtime starts a new plugin
//! process for every ADD, DEL and CHECK, so start-up is paid on every pod,
//! and on the machines this was measured on a page fault costs 4–9 µs: the
//! pages a short process touches are most of its cost.
//!
//! - **Position-dependent executables.** Linked as a PIE, the dynamic
//!   loader applies about 17,600 relative relocations at every start,
//!   writing to (and so copying) every page of the 280 KiB
//!   read-only-after-relocation segment; linked at a fixed address there is
//!   nothing to relocate. `CNI_COMMAND=VERSION` went from 183 to 109 page
//!   faults and 0.35–0.4 ms less per invocation (`perf stat -r 300`). Go,
//!   which Calico's plugins are written in, links non-PIE executables by
//!   default on amd64 too.
//! - **Hot functions together.** `link-order.txt` lists the functions the
//!   plugin runs for VERSION, ADD and DEL (about 1.9 MiB of code); the
//!   linker places them first, together, instead of spread over the 9 MiB
//!   of text. ADD p50 went from 5.0–5.3 to 4.2–4.5 ms in the same runs
//!   (bench/RESULTS.md, "CNI plugins"). Run from the linker's own output,
//!   an ADD took 116 page faults in the text; run from an installed copy
//!   it takes next to none either way, so the gain there is locality
//!   itself (fewer pages and translations touched). The list is
//!   regenerated with the `add_del` bench (`--link-order`); names that no
//!   longer exist are skipped, so a stale list only loses some of the
//!   gain. It needs lld, the default linker of Rust on
//!   x86_64-unknown-linux-gnu; it is left out where another linker is
//!   asked for.
//!
//! Only the `calico`/`calico-ipam` binaries are affected; the library, the
//! tests and every other binary keep the defaults.

fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");

    let order = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("link-order.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    if order.exists() && linker_is_lld() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// Whether the binaries are linked by Rust's own lld: the default for
/// x86_64-unknown-linux-gnu unless the flags turn it off or name a linker.
fn linker_is_lld() -> bool {
    let target = std::env::var("TARGET").unwrap_or_default();
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let asks_for_another = flags.split('\u{1f}').any(|flag| {
        flag.contains("linker-features=-lld")
            || flag.contains("link-self-contained=-linker")
            || flag.contains("linker=")
            || flag.contains("fuse-ld=") && !flag.contains("fuse-ld=lld")
    });
    target == "x86_64-unknown-linux-gnu" && !asks_for_another
}
