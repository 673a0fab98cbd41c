#!/usr/bin/env bash
# Sets everything up, then runs the whole test suite: formatting, lints and
# every test (including those that start real peers such as etcd). Needs root
# for the tests that create network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
# One build from a clean checkout: the incremental cache would only cost disk.
export CARGO_INCREMENTAL=0

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
log_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$log_dir"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log_dir/test-output.log"
