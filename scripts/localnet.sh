#!/usr/bin/env bash
# Runs a whole AegisLink network on loopback (3 authorities, 3 mix layers × 2,
# 2 gateways, 2 chatting clients) as separate processes; arguments go to
# `aegis-localnet` (try --help). Installs what a fresh Debian machine lacks
# first (see scripts/prerequisites.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/prerequisites.sh
aegis_prerequisites
exec cargo run --quiet -p aegis-localnet -- "$@"
