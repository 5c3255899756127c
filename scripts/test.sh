#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test of
# the workspace. Installs what a fresh Debian machine lacks first (see
# scripts/prerequisites.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/prerequisites.sh
aegis_prerequisites
rustup component add rustfmt clippy >/dev/null 2>&1 || true

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
