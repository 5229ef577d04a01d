#!/usr/bin/env bash
# What the rule for ocinet's own sources (issue 21) costs a container's
# traffic, as it stands in the table the build makes: iperf3
# from a container to an outside namespace, TCP bulk and UDP with 64-byte
# payloads, alternating runs with the rule in place and deleted, in one
# throwaway host namespace. Run as root after `scripts/build.sh`:
#
#     sudo bench/own_sources_cost.sh [ROUNDS] [SECONDS]
#
# Traffic stays in the namespaces this script makes (198.51.100.0/24
# between the host and the outside, 10.99.0.0/24 for the container).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"
secs="${2:-3}"
bin="$PWD/target/release/ocinet"
[ -x "$bin" ] || { echo "build first: scripts/build.sh" >&2; exit 1; }
command -v iperf3 >/dev/null || { echo "needs iperf3" >&2; exit 1; }
tag="rpf$$"
H="${tag}h"
O="${tag}o"
work="$(mktemp -d)"
sleeper=""
cleanup() {
  if [ -n "$sleeper" ] && [ -f "$work/state.json" ]; then
    nsenter --net="/run/netns/$H" "$bin" --state-dir "$work/s" --config-dir "$work/c" \
      hook poststop <"$work/state.json" >/dev/null 2>&1 || true
  fi
  [ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null || true
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
  ip netns del "$H" 2>/dev/null || true
  ip netns del "$O" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$H"
ip netns add "$O"
ip -n "$H" link set lo up
ip -n "$O" link set lo up
ip -n "$H" link add "${tag}a" type veth peer name "${tag}b" netns "$O"
ip -n "$H" addr add 198.51.100.1/24 dev "${tag}a"
ip -n "$O" addr add 198.51.100.2/24 dev "${tag}b"
ip -n "$H" link set "${tag}a" up
ip -n "$O" link set "${tag}b" up
in_host() { nsenter --net="/run/netns/$H" "$@"; }
in_host "$bin" --state-dir "$work/s" --config-dir "$work/c" network create rpf \
  --subnet 10.99.0.0/24 --disable-dns >/dev/null
# A stand-in container: a process in a network namespace of its own
# (nsenter and unshare exec, so $! is the sleep itself).
nsenter --net="/run/netns/$H" unshare -n sleep 3600 &
sleeper=$!
mine="$(stat -L -c %i /proc/self/ns/net)"
host="$(stat -L -c %i "/run/netns/$H")"
for _ in $(seq 200); do
  ns="$(stat -L -c %i "/proc/$sleeper/ns/net" 2>/dev/null || true)"
  [ -n "$ns" ] && [ "$ns" != "$mine" ] && [ "$ns" != "$host" ] \
    && [ "$(cat "/proc/$sleeper/comm" 2>/dev/null)" = sleep ] && break
  sleep 0.01
done
ns="$(stat -L -c %i "/proc/$sleeper/ns/net")"
[ "$ns" != "$mine" ] && [ "$ns" != "$host" ] || { echo "no namespace of its own" >&2; exit 1; }
mkdir -p "$work/bundle"
cat >"$work/bundle/config.json" <<EOF
{"ociVersion":"1.0.2","root":{"path":"rootfs"},
 "annotations":{"io.ocinet.network":"rpf"},
 "linux":{"namespaces":[{"type":"network"}]}}
EOF
printf '{"ociVersion":"1.0","id":"%s-c","status":"creating","pid":%s,"bundle":"%s"}' \
  "$tag" "$sleeper" "$work/bundle" >"$work/state.json"
in_host "$bin" --state-dir "$work/s" --config-dir "$work/c" hook createRuntime <"$work/state.json"
nsenter --net="/run/netns/$O" iperf3 -s -B 198.51.100.2 -D --pidfile "$work/iperf.pid" >/dev/null
sleep 0.3
server="$(cat "$work/iperf.pid")"
handle() {
  ip netns exec "$H" nft -a list chain inet ocinet prerouting_guard |
    awk '/own_sources/ {print $NF}'
}
# The rule as the build made it, to put back word for word.
rule="$(ip netns exec "$H" nft list chain inet ocinet prerouting_guard | awk '/own_sources/' | sed 's/^[[:space:]]*//')"
[ -n "$rule" ] || { echo "no own_sources rule in the table" >&2; exit 1; }
rule_on() {
  # shellcheck disable=SC2086 # the rule's words, as nft listed them
  ip netns exec "$H" nft add rule inet ocinet prerouting_guard $rule
}
rule_off() { ip netns exec "$H" nft delete rule inet ocinet prerouting_guard handle "$(handle)"; }
run() { # $@: iperf3 client options; prints bits per second
  nsenter --net="/proc/$sleeper/ns/net" iperf3 -c 198.51.100.2 -t "$secs" -J "$@" |
    python3 -c 'import json,sys; e=json.load(sys.stdin)["end"]; print(int((e.get("sum_sent") or e["sum"])["bits_per_second"]))'
}
declare -A res
# The order swaps every round: the second run of a pair is favoured
# (measured: 10% with the same rule in both, when "deleted" always ran
# second).
for r in $(seq "$rounds"); do
  order="on off"
  [ $((r % 2)) = 0 ] && order="off on"
  for state in $order; do
    [ "$state" = off ] && rule_off
    res[tcp_$state]+="$(run) "
    res[udp_$state]+="$(run -u -l 64 -b 0) "
    [ "$state" = off ] && rule_on
  done
done
[ -n "$(handle)" ] || { echo "the rule was not put back" >&2; exit 1; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "| traffic, container -> outside | rule in place | rule deleted | in place / deleted |"
echo "|---|---|---|---|"
for k in tcp udp; do
  on="$(echo "${res[${k}_on]}" | median)"
  off="$(echo "${res[${k}_off]}" | median)"
  python3 -c "import sys; on,off=int(sys.argv[2]),int(sys.argv[3]); unit=1e9 if sys.argv[1]=='tcp' else 1e6; u='Gbit/s' if sys.argv[1]=='tcp' else 'Mbit/s'; label='TCP bulk' if sys.argv[1]=='tcp' else 'UDP, 64-byte payloads'; print(f'| {label} | {on/unit:.2f} {u} | {off/unit:.2f} {u} | {100*on/off:.0f}% |')" "$k" "$on" "$off"
done
