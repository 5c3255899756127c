#!/usr/bin/env bash
# localnet-netns.sh: a local AegisLink network whose hosts each live in their
# own Linux network namespace, with their own address on a private bridge.
#
#   sudo deploy/netns/localnet-netns.sh up       # configure (first time), wire, start
#   sudo deploy/netns/localnet-netns.sh status   # namespaces, processes, health
#   sudo deploy/netns/localnet-netns.sh down     # stop everything, remove the wiring
#
# Hosts (namespace aegis-NAME, address 10.77.0.N/24 on bridge aegis-br0,
# whose own address in the root namespace is 10.77.0.1):
#
#   a0 a1 a2        directory authorities   10.77.0.10-12   HTTP :7900
#   m0 .. m5        mix nodes               10.77.0.20-25   libp2p :4100, metrics :9100
#   g0 g1           gateways                10.77.0.30-31   libp2p :4100, metrics :9100
#
# Every host is configured with its own `init` command, as an operator would.
# Configuration, keys, databases and logs stay in $AEGIS_NETNS_DIR across
# `down` and `up`; delete that folder to start a new network.
#
# Environment:
#   AEGIS_BIN         folder holding aegis-dir and aegis-node (default: the
#                     workspace's target/debug; see bin_dir below)
#   AEGIS_NETNS_DIR   working folder (default /var/tmp/aegis-netns)
#   AEGIS_EPOCH_MS    epoch length for a new network (default 6000)
#   AEGIS_NETNS_WAIT  seconds `up` waits for every node to report healthy
#                     (default 120; 0 to return at once)
#
# Documented in docs/operator-guide.md ("A local network in namespaces").

set -euo pipefail

readonly BRIDGE=aegis-br0
readonly SUBNET=10.77.0
readonly BRIDGE_CIDR="${SUBNET}.1/24"
readonly AUTHORITY_PORT=7900
readonly NODE_PORT=4100
readonly METRICS_PORT=9100
readonly AUTHORITIES=(a0 a1 a2)
readonly MIXES=(m0 m1 m2 m3 m4 m5)
readonly GATEWAYS=(g0 g1)
readonly NODES=("${MIXES[@]}" "${GATEWAYS[@]}")
readonly HOSTS=("${AUTHORITIES[@]}" "${NODES[@]}")
# Seconds processes get to stop after their signal before they are killed.
readonly STOP_GRACE=15

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "${SCRIPT_DIR}/../.." && pwd)"
readonly SCRIPT_DIR REPO_DIR
readonly WORK="${AEGIS_NETNS_DIR:-/var/tmp/aegis-netns}"
readonly EPOCH_MS="${AEGIS_EPOCH_MS:-6000}"
readonly WAIT_SECS="${AEGIS_NETNS_WAIT:-120}"

say() { printf '%s\n' "$*"; }
die() {
    printf 'localnet-netns: %s\n' "$*" >&2
    exit 1
}

usage() {
    cat <<EOF
usage: $(basename "$0") up|down|status

  up      initialise the hosts (first time only), create the bridge ${BRIDGE},
          one namespace per host, and start every authority and node
  down    stop every process, delete the namespaces, veths and the bridge
          (files in ${WORK} are kept)
  status  show namespaces, processes and each host's health

Run as root. See docs/operator-guide.md ("A local network in namespaces").
EOF
}

require_root() {
    [[ "$(id -u)" -eq 0 ]] || die "run as root (it creates network namespaces)"
}

require_tools() {
    local tool
    for tool in "$@"; do
        command -v "${tool}" >/dev/null 2>&1 || die "${tool} is needed but not installed"
    done
}

# Host name -> namespace, address, host-side veth name.
ns_of() { printf 'aegis-%s' "$1"; }
veth_of() { printf 'aegis-%s-h' "$1"; }
ip_of() {
    local host=$1 base
    case "${host:0:1}" in
        a) base=10 ;;
        m) base=20 ;;
        g) base=30 ;;
        *) die "unknown host ${host}" ;;
    esac
    printf '%s.%d' "${SUBNET}" "$((base + ${host:1}))"
}
role_of() {
    case "${1:0:1}" in
        a) printf 'authority' ;;
        m) printf 'mix' ;;
        g) printf 'gateway' ;;
    esac
}

ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }
link_exists() { ip link show dev "$1" >/dev/null 2>&1; }

# The folder with the binaries: $AEGIS_BIN; else target/debug of the
# workspace, honouring $CARGO_TARGET_DIR and the target-dir that the
# workspace's .cargo/config.toml may set.
bin_dir() {
    if [[ -n "${AEGIS_BIN:-}" ]]; then
        printf '%s' "${AEGIS_BIN}"
        return
    fi
    if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
        printf '%s/debug' "${CARGO_TARGET_DIR}"
        return
    fi
    if [[ -x "${REPO_DIR}/target/debug/aegis-node" ]]; then
        printf '%s/target/debug' "${REPO_DIR}"
        return
    fi
    local configured=""
    if [[ -f "${REPO_DIR}/.cargo/config.toml" ]]; then
        configured="$(sed -n 's/^[[:space:]]*target-dir[[:space:]]*=[[:space:]]*"\(.*\)".*$/\1/p' \
            "${REPO_DIR}/.cargo/config.toml" | head -n 1)"
    fi
    if [[ -n "${configured}" ]]; then
        [[ "${configured}" == /* ]] || configured="${REPO_DIR}/${configured}"
        printf '%s/debug' "${configured}"
    else
        printf '%s/target/debug' "${REPO_DIR}"
    fi
}

http_code() {
    curl --noproxy '*' -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true
}

# --- up ------------------------------------------------------------------

warn_bridge_filtering() {
    local knob=/proc/sys/net/bridge/bridge-nf-call-iptables
    if [[ -r "${knob}" && "$(cat "${knob}")" == 1 ]]; then
        say "note: bridged traffic passes through iptables (${knob} = 1); if the FORWARD"
        say "      chain drops it (as Docker's rules do), allow ${BRIDGE}:"
        say "      iptables -I FORWARD -i ${BRIDGE} -o ${BRIDGE} -j ACCEPT"
    fi
}

# Initialises every authority and node once; later `up`s reuse the files.
initialise() {
    local bin=$1
    if [[ -f "${WORK}/.initialised" ]]; then
        say "reusing the network configured in ${WORK}"
        return
    fi
    if [[ -d "${WORK}" ]] && [[ -n "$(ls -A "${WORK}")" ]]; then
        die "${WORK} holds files but no finished setup; remove it or set AEGIS_NETNS_DIR"
    fi
    mkdir -p "${WORK}/logs"
    local genesis
    genesis="$(date +%s%3N)"
    local host ip out key
    : >"${WORK}/authorities.txt"
    for host in "${AUTHORITIES[@]}"; do
        ip="$(ip_of "${host}")"
        out="$("${bin}/aegis-dir" init \
            --data-dir "${WORK}/${host}" \
            --name "authority-${host}" \
            --listen "${ip}:${AUTHORITY_PORT}" \
            --epoch-length-ms "${EPOCH_MS}" \
            --genesis-unix-ms "${genesis}" \
            --admission open)"
        key="$(sed -n 's/^public key:[[:space:]]*\([0-9a-f]\{64\}\)[[:space:]]*$/\1/p' <<<"${out}")"
        [[ -n "${key}" ]] || die "aegis-dir init printed no public key for ${host}"
        printf '%s %s http://%s:%s\n' "${host}" "${key}" "${ip}" "${AUTHORITY_PORT}" \
            >>"${WORK}/authorities.txt"
    done

    # Each authority lists the others under [[peers]]. The file from init
    # says `peers = []`, which a [[peers]] table would redefine: drop it.
    local config name peer_key url
    for host in "${AUTHORITIES[@]}"; do
        config="${WORK}/${host}/aegis-dir.toml"
        sed -i '/^peers[[:space:]]*=[[:space:]]*\[\][[:space:]]*$/d' "${config}"
        while read -r name peer_key url; do
            [[ "${name}" == "${host}" ]] && continue
            printf '\n[[peers]]\nname = "authority-%s"\npublic_key = "%s"\nurl = "%s"\n' \
                "${name}" "${peer_key}" "${url}" >>"${config}"
        done <"${WORK}/authorities.txt"
    done

    local authority_flags=()
    while read -r name peer_key url; do
        authority_flags+=(--authority "${url}=${peer_key}")
    done <"${WORK}/authorities.txt"
    printf '%s\n' "${authority_flags[*]}" >"${WORK}/authority-flags.txt"

    : >"${WORK}/nodes.txt"
    local identity
    for host in "${NODES[@]}"; do
        ip="$(ip_of "${host}")"
        out="$("${bin}/aegis-node" init \
            --data-dir "${WORK}/${host}" \
            --role "$(role_of "${host}")" \
            --listen "/ip4/${ip}/tcp/${NODE_PORT}" \
            --metrics-listen "${ip}:${METRICS_PORT}" \
            "${authority_flags[@]}")"
        identity="$(sed -n 's/^identity:[[:space:]]*\([0-9a-f]\{64\}\)[[:space:]]*$/\1/p' <<<"${out}")"
        printf '%s %s %s %s\n' "${host}" "$(role_of "${host}")" "${ip}" "${identity:-?}" \
            >>"${WORK}/nodes.txt"
    done
    touch "${WORK}/.initialised"
    say "configured ${#AUTHORITIES[@]} authorities and ${#NODES[@]} nodes in ${WORK}"
}

wire() {
    ip link add "${BRIDGE}" type bridge
    ip addr add "${BRIDGE_CIDR}" dev "${BRIDGE}"
    ip link set "${BRIDGE}" up
    local host ns veth
    for host in "${HOSTS[@]}"; do
        ns="$(ns_of "${host}")"
        veth="$(veth_of "${host}")"
        ip netns add "${ns}"
        ip link add "${veth}" type veth peer name "aegis-${host}-n"
        ip link set "aegis-${host}-n" netns "${ns}"
        ip link set "${veth}" master "${BRIDGE}"
        ip link set "${veth}" up
        ip -n "${ns}" link set lo up
        ip -n "${ns}" link set "aegis-${host}-n" name eth0
        ip -n "${ns}" addr add "$(ip_of "${host}")/24" dev eth0
        ip -n "${ns}" link set eth0 up
    done
}

# Starts a command inside a host's namespace, detached from this shell, with
# default signal handling (background jobs of a script ignore SIGINT, which
# aegis-dir stops on), output appended to the host's log.
start_in() {
    local host=$1
    shift
    (
        trap - INT QUIT
        export NO_COLOR=1
        exec setsid ip netns exec "$(ns_of "${host}")" "$@"
    ) >>"${WORK}/logs/${host}.log" 2>&1 </dev/null &
}

wait_healthy() {
    command -v curl >/dev/null 2>&1 || {
        say "curl not installed: not waiting; check with: $0 status"
        return 0
    }
    [[ "${WAIT_SECS}" -gt 0 ]] || return 0
    local deadline=$((SECONDS + WAIT_SECS)) healthy host shown=-1
    while :; do
        healthy=0
        for host in "${NODES[@]}"; do
            if [[ "$(http_code "http://$(ip_of "${host}"):${METRICS_PORT}/health")" == 200 ]]; then
                healthy=$((healthy + 1))
            fi
        done
        if [[ "${healthy}" -ne "${shown}" ]]; then
            say "waiting for the consensus: ${healthy}/${#NODES[@]} nodes listed and serving"
            shown=${healthy}
        fi
        if [[ "${healthy}" -eq "${#NODES[@]}" ]]; then
            return 0
        fi
        if [[ "${SECONDS}" -ge "${deadline}" ]]; then
            say "not every node is healthy after ${WAIT_SECS} s; see: $0 status, ${WORK}/logs"
            return 0
        fi
        sleep 1
    done
}

on_up_exit() {
    [[ "$1" -eq 0 ]] || say "up failed; clean up with: $0 down" >&2
}

cmd_up() {
    require_root
    require_tools ip setsid sed awk paste date
    local bin
    bin="$(bin_dir)"
    local b
    for b in aegis-dir aegis-node; do
        [[ -x "${bin}/${b}" ]] ||
            die "${bin}/${b} not found; build with: cargo build --bin aegis-dir --bin aegis-node (or set AEGIS_BIN)"
    done
    if link_exists "${BRIDGE}" || ns_exists "$(ns_of "${HOSTS[0]}")"; then
        die "already up (bridge ${BRIDGE} or namespace $(ns_of "${HOSTS[0]}") exists); see: $0 status, $0 down"
    fi
    trap 'on_up_exit $?' EXIT
    say "binaries: ${bin}"
    warn_bridge_filtering
    initialise "${bin}"
    wire
    mkdir -p "${WORK}/logs"
    local host
    for host in "${AUTHORITIES[@]}"; do
        start_in "${host}" "${bin}/aegis-dir" run --config "${WORK}/${host}/aegis-dir.toml"
    done
    for host in "${NODES[@]}"; do
        start_in "${host}" "${bin}/aegis-node" run --config "${WORK}/${host}/aegis-node.toml"
    done
    trap - EXIT
    say "started ${#AUTHORITIES[@]} authorities, ${#MIXES[@]} mixes and ${#GATEWAYS[@]} gateways; logs in ${WORK}/logs"
    wait_healthy
    say ""
    say "authorities (pin these in a client, e.g. aegis --profile P init ...):"
    say "  $(cat "${WORK}/authority-flags.txt")"
    say "metrics:  curl http://$(ip_of "${MIXES[0]}"):${METRICS_PORT}/metrics"
    say "the wire: tcpdump -ni ${BRIDGE} tcp port ${NODE_PORT}"
    say "stop:     $0 down"
}

# --- down ----------------------------------------------------------------

ns_pids() {
    ip netns pids "$1" 2>/dev/null || true
}

cmd_down() {
    require_root
    require_tools ip
    local host ns pid signal
    # Nodes stop gracefully on SIGTERM (replay filters are saved); the
    # authorities on SIGINT.
    for host in "${HOSTS[@]}"; do
        ns="$(ns_of "${host}")"
        ns_exists "${ns}" || continue
        signal=TERM
        [[ "$(role_of "${host}")" == authority ]] && signal=INT
        for pid in $(ns_pids "${ns}"); do
            kill -s "${signal}" "${pid}" 2>/dev/null || true
        done
    done
    local deadline=$((SECONDS + STOP_GRACE)) left
    while :; do
        left=0
        for host in "${HOSTS[@]}"; do
            ns="$(ns_of "${host}")"
            ns_exists "${ns}" || continue
            [[ -n "$(ns_pids "${ns}")" ]] && left=$((left + 1))
        done
        [[ "${left}" -eq 0 ]] && break
        if [[ "${SECONDS}" -ge "${deadline}" ]]; then
            say "${left} host(s) did not stop within ${STOP_GRACE} s; killing them"
            for host in "${HOSTS[@]}"; do
                ns="$(ns_of "${host}")"
                ns_exists "${ns}" || continue
                for pid in $(ns_pids "${ns}"); do
                    kill -s KILL "${pid}" 2>/dev/null || true
                done
            done
            sleep 1
            break
        fi
        sleep 0.5
    done
    for host in "${HOSTS[@]}"; do
        ns="$(ns_of "${host}")"
        if ns_exists "${ns}"; then
            ip netns del "${ns}"
        fi
    done
    # Deleting a namespace removes both ends of its veth, though the kernel
    # may take a moment; a veth left by an interrupted `up` goes here.
    for host in "${HOSTS[@]}"; do
        if link_exists "$(veth_of "${host}")"; then
            ip link del "$(veth_of "${host}")" 2>/dev/null || true
        fi
    done
    if link_exists "${BRIDGE}"; then
        ip link del "${BRIDGE}"
    fi
    say "down: processes stopped; namespaces, veths and ${BRIDGE} removed (files kept in ${WORK})"
}

# --- status --------------------------------------------------------------

cmd_status() {
    require_root
    require_tools ip
    local have_curl=0
    command -v curl >/dev/null 2>&1 && have_curl=1
    if link_exists "${BRIDGE}"; then
        say "bridge ${BRIDGE}: up, ${BRIDGE_CIDR}"
    else
        say "bridge ${BRIDGE}: absent"
    fi
    say "working folder: ${WORK}"
    printf '%-5s %-10s %-12s %-8s %s\n' host role address process health
    local host ns ip pids state health code body epoch
    for host in "${HOSTS[@]}"; do
        ns="$(ns_of "${host}")"
        ip="$(ip_of "${host}")"
        if ! ns_exists "${ns}"; then
            printf '%-5s %-10s %-12s %-8s %s\n' "${host}" "$(role_of "${host}")" "${ip}" - "no namespace"
            continue
        fi
        pids="$(ns_pids "${ns}" | paste -s -d ',' -)"
        state="${pids:-stopped}"
        health="-"
        if [[ "${have_curl}" -eq 1 && -n "${pids}" ]]; then
            if [[ "$(role_of "${host}")" == authority ]]; then
                body="$(curl --noproxy '*' -s -m 2 "http://${ip}:${AUTHORITY_PORT}/status" 2>/dev/null || true)"
                epoch="$(sed -n 's/.*"current_document_epoch":\([0-9a-z]*\).*/\1/p' <<<"${body}")"
                if [[ -z "${body}" ]]; then
                    health="no answer on :${AUTHORITY_PORT}"
                else
                    health="document epoch ${epoch:-?}"
                fi
            else
                code="$(http_code "http://${ip}:${METRICS_PORT}/health")"
                case "${code}" in
                    200) health="healthy (listed in the current consensus)" ;;
                    503) health="not listed yet (503)" ;;
                    *) health="no answer on :${METRICS_PORT}" ;;
                esac
            fi
        fi
        printf '%-5s %-10s %-12s %-8s %s\n' "${host}" "$(role_of "${host}")" "${ip}" "${state}" "${health}"
    done
}

main() {
    case "${1:-}" in
        up) cmd_up ;;
        down) cmd_down ;;
        status) cmd_status ;;
        -h | --help | help) usage ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
