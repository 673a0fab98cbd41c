//! The plugin binaries are linked as position-dependent executables.
//!
//! A runtime starts a new plugin process for every ADD, DEL and CHECK, so
//! the plugin's start-up cost is paid on every pod. Linked as a PIE, the
//! dynamic loader applies about 17,600 relative relocations at every start,
//! writing to (and so copying) every page of the 280 KiB read-only-after-
//! relocation segment; linked at a fixed address there is nothing to
//! relocate. Measured with `perf stat -r 300` on `CNI_COMMAND=VERSION`:
//! page faults 183 → 109 and 0.35–0.4 ms less per invocation (see
//! bench/RESULTS.md, "CNI plugins"). Go, which Calico's plugins are written
//! in, links non-PIE executables by default on amd64 too.
//!
//! Only the `calico`/`calico-ipam` binaries are affected; the library, the
//! tests and every other binary keep the default.

fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
