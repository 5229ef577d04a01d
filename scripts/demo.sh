#!/usr/bin/env bash
# The main job, end to end: build ocinet, start a busybox container with runc
# networked by the ocinet hook with a published port, print its address,
# fetch a page from it directly and through the published port, serve the
# exporter's metrics, then stop it all and show that teardown left nothing
# behind.
#
# Everything happens inside a throwaway "host" network namespace, so the
# machine's own interfaces, routes and firewall are never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: ocinet configures network namespaces" >&2; exit 1; }
./scripts/install-deps.sh
./scripts/build.sh

BIN=$PWD/target/release/ocinet
EXPORTER=$PWD/target/release/ocinet-exporter
WORK=$(mktemp -d /tmp/ocinet-demo.XXXXXX)
HOST=ocinet-demo-$$
ID=demo-web-$$
RUNTIME_PID=
EXPORTER_PID=

in_host() { nsenter --net="/run/netns/$HOST" "$@"; }
oci() { in_host "$BIN" "$@" --state-dir "$WORK/state" --config-dir "$WORK/config"; }

cleanup() {
    set +e
    [ -n "$EXPORTER_PID" ] && kill "$EXPORTER_PID" 2>/dev/null && wait "$EXPORTER_PID" 2>/dev/null
    if [ -n "$RUNTIME_PID" ] && kill -0 "$RUNTIME_PID" 2>/dev/null; then
        in_host runc kill "$ID" KILL 2>/dev/null
        wait "$RUNTIME_PID" 2>/dev/null
    fi
    in_host runc delete --force "$ID" 2>/dev/null
    ip netns del "$HOST" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$HOST"
in_host ip link set lo up

# A busybox root filesystem and a bundle whose config.json calls the hook.
mkdir -p "$WORK/bundle/rootfs"/{bin,proc,sys,dev,tmp,etc,www}
cp /bin/busybox "$WORK/bundle/rootfs/bin/"
for a in sh httpd ip sleep; do ln -s busybox "$WORK/bundle/rootfs/bin/$a"; done
echo "hello from a container networked by ocinet" > "$WORK/bundle/rootfs/www/index.html"
(cd "$WORK/bundle" && runc spec)
python3 - "$WORK/bundle/config.json" "$BIN" "$WORK" <<'PY'
import json, sys
path, bin, work = sys.argv[1:]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = ["httpd", "-f", "-p", "80", "-h", "/www"]
c["process"]["capabilities"] = {k: ["CAP_NET_BIND_SERVICE"] for k in ("bounding", "effective", "permitted")}
common = ["--state-dir", work + "/state", "--config-dir", work + "/config"]
c["hooks"] = {
    "createRuntime": [{"path": bin, "args": ["ocinet", "hook", "createRuntime"] + common}],
    "poststop": [{"path": bin, "args": ["ocinet", "hook", "poststop"] + common}],
}
c["annotations"] = {"io.ocinet.name": "demo-web", "io.ocinet.ports": "8080:80"}
json.dump(c, open(path, "w"), indent=2)
PY

echo "== starting container $ID with runc"
in_host runc run --bundle "$WORK/bundle" "$ID" </dev/null >"$WORK/runc.log" 2>&1 &
RUNTIME_PID=$!
for _ in $(seq 100); do
    IP=$(oci ps --json | python3 -c 'import json,sys; print(next((e["ip"] for e in json.load(sys.stdin) if e["state"]=="ready"), ""))')
    [ -n "$IP" ] && break
    sleep 0.1
done
[ -n "$IP" ] || { cat "$WORK/runc.log"; exit 1; }
echo "== container address: $IP"
oci ps
sleep 0.3
echo "== GET http://$IP/ from the host namespace:"
in_host timeout 5 busybox wget -q -O - "http://$IP/"
echo "== GET http://127.0.0.1:8080/ (the published port) from the host namespace:"
in_host timeout 5 busybox wget -q -O - "http://127.0.0.1:8080/"
echo "== network inspect:"
oci network inspect ocinet

echo "== starting ocinet-exporter on 127.0.0.1:19870 (in the demo's host namespace)"
# nsenter execs the exporter, so $! is the exporter itself (a shell function
# in the background would put a subshell in between).
nsenter --net="/run/netns/$HOST" "$EXPORTER" --state-dir "$WORK/state" --config-dir "$WORK/config" >"$WORK/exporter.log" 2>&1 &
EXPORTER_PID=$!
for _ in $(seq 50); do in_host curl -sf -o /dev/null http://127.0.0.1:19870/ && break; sleep 0.1; done
echo "== a scrape of http://127.0.0.1:19870/metrics (container series):"
in_host curl -sf http://127.0.0.1:19870/metrics | grep -E '^ocinet_(container_network_(receive|transmit)_bytes_total|container_network_info|port_mapping_connections|nf_conntrack_entries|network_addresses)'
kill "$EXPORTER_PID"; wait "$EXPORTER_PID" 2>/dev/null || true
EXPORTER_PID=

echo "== stopping the container (poststop tears the network down)"
in_host runc kill "$ID" KILL
wait "$RUNTIME_PID" 2>/dev/null || true
RUNTIME_PID=
left=$(oci ps --json)
# poststop retires the host veth (down, marked 'ocinet: retired') and the kernel
# deletes the pair with the container's namespace a moment later.
for _ in $(seq 1 50); do
    veths=$(in_host ip -o link show type veth | wc -l)
    [ "$veths" = 0 ] && break
    sleep 0.1
done
echo "== endpoints left: $left, veths left: $veths"
[ "$left" = "[]" ] && [ "$veths" = 0 ] || { echo "teardown left something behind" >&2; exit 1; }
echo "== demo OK"
