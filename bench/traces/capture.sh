#!/usr/bin/env bash
# capture.sh records the loopback capture socksim replay checks the Demux
# against: nginx serving wrk, in a network namespace this script makes,
# with the kernel's own replies in the trace. Run it by hand, as root:
#
#	apt-get install nginx-light wrk tcpdump iproute2
#	bash bench/traces/capture.sh [OUT.pcap]
#
# It writes OUT (default bench/testdata/nginx-wrk.pcap; tcpdump writes
# pcap), gzipped beside it as OUT.gz, and the listener manifest: OUT less
# .pcap, plus .listeners.json. Nothing leaves the namespace: only its loopback is used.
#
# What the trace holds, so the replay sees every kind of verdict:
#   - an IPv4 listener (127.0.0.1:8080) and an IPv6 one ([::1]:8081,
#     v6only), each a SO_REUSEPORT group of two (nginx's reuseport with two
#     workers);
#   - keep-alive runs (wrk's default), whose client closes first at the end
#     and so holds TIME_WAIT, and Connection: close runs, where nginx closes
#     first and holds it;
#   - ip_local_port_range of 300 ports, so clients reuse tuples still in
#     TIME_WAIT (the server's entries taken over by a new SYN; the client's
#     by tcp_tw_reuse=2, which allows it on loopback);
#   - connects to closed ports (answered with RST), IPv4 and IPv6;
#   - segments sent from a raw socket (bench/traces/poke) to TIME_WAIT
#     sockets, to a listener and to a closed port, for the kernel's answers
#     to what a well-behaved peer does not send;
#   - tcpdump -s 96: packets cut at 96 bytes, headers only.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../testdata/nginx-wrk.pcap}
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
manifest=${out%.pcap}.listeners.json

for tool in nginx wrk tcpdump ip; do
	command -v "$tool" >/dev/null || { echo "capture.sh: $tool is missing (apt-get install nginx-light wrk tcpdump iproute2)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "capture.sh: run as root (it makes a network namespace)" >&2; exit 1; }

ns=socktable-capture-$$
command -v go >/dev/null || { echo "capture.sh: go is needed to build bench/traces/poke" >&2; exit 1; }
work=$(mktemp -d)
cleanup() {
	[ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
	ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
	sleep 0.5
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$ns"
in_ns() { ip netns exec "$ns" "$@"; }
in_ns ip link set lo up
in_ns sysctl -q -w net.ipv4.ip_local_port_range="40000 40299"
in_ns sysctl -q -w net.ipv4.tcp_tw_reuse=2
in_ns sysctl -q -w net.ipv4.tcp_syncookies=1

(cd "$here/poke" && go build -o "$work/poke" .)
mkdir -p "$work/www"
echo "hello from socktable's capture" > "$work/www/index.html"
cat > "$work/nginx.conf" <<CONF
user root;
worker_processes 2;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:8080 reuseport backlog=128;
		listen [::1]:8081 reuseport backlog=128 ipv6only=on;
		root $work/www;
	}
}
CONF
cat > "$manifest" <<JSON
[
  {"proto":"tcp","addr":"127.0.0.1","port":8080,"reuseport":2,"v6only":false,"backlog":128},
  {"proto":"tcp","addr":"::1","port":8081,"reuseport":2,"v6only":true,"backlog":128}
]
JSON

# wrk stops after a number of responses, not a time, to keep the trace a
# few MB whatever the machine's speed.
stop_after() {
	cat > "$work/stop$1.lua" <<LUA
local n = 0
function response()
	n = n + 1
	if n >= $1 then wrk.thread:stop() end
end
LUA
	echo "$work/stop$1.lua"
}

in_ns tcpdump -i lo -s 96 -w "$out" --immediate-mode -U -q 'tcp' 2>"$work/tcpdump.log" &
dump=$!
sleep 1
in_ns nginx -c "$work/nginx.conf"
sleep 0.5

closed_port() { # a connect to a port nobody listens on: the kernel's RST
	in_ns bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null || true
}
closed_port 127.0.0.1 9
closed_port ::1 9

# Keep-alive: 8 connections, 2000 requests, IPv4 then IPv6.
in_ns wrk -t1 -c8 -d5s -s "$(stop_after 2000)" http://127.0.0.1:8080/ >/dev/null
in_ns wrk -t1 -c8 -d5s -s "$(stop_after 2000)" 'http://[::1]:8081/' >/dev/null
closed_port 127.0.0.1 8082
# Connection: close, a new connection per request: with 300 ports the
# client reuses tuples nginx still holds in TIME_WAIT.
in_ns wrk -t1 -c4 -d5s -s "$(stop_after 1500)" -H 'Connection: close' http://127.0.0.1:8080/ >/dev/null
in_ns wrk -t1 -c4 -d5s -s "$(stop_after 1500)" -H 'Connection: close' 'http://[::1]:8081/' >/dev/null
sleep 1.5
# Keep-alive again after more than a second: the client's own TIME_WAIT
# tuples from the first run can be reused (tcp_tw_reuse=2).
in_ns wrk -t1 -c8 -d5s -s "$(stop_after 1000)" http://127.0.0.1:8080/ >/dev/null
# Segments no client sends on its own, from a raw socket: to two of the
# client's TIME_WAIT sockets an ACK out of their window (answered with an
# ACK, which the listener then resets) and an RST out of it (ignored); to
# the listener an ACK with no request behind it, and to a closed port an
# ACK (both answered with an RST).
mapfile -t tw < <(in_ns ss -Htan state time-wait '( dport = :8080 )' | awk '{print $(NF-1), $NF}' | head -2)
if [ "${#tw[@]}" -ge 2 ]; then
	read -r local peer <<<"${tw[0]}"
	in_ns "$work/poke" -from "$peer" -to "$local" -flags A -seq 12345 -ack 67890
	read -r local peer <<<"${tw[1]}"
	in_ns "$work/poke" -from "$peer" -to "$local" -flags R -seq 12345
else
	echo "capture.sh: fewer than two TIME_WAIT sockets to poke" >&2
fi
in_ns "$work/poke" -from 127.0.0.1:39999 -to 127.0.0.1:8080 -flags A -seq 1000 -ack 2000
in_ns "$work/poke" -from 127.0.0.1:39998 -to 127.0.0.1:7 -flags A -seq 1000 -ack 2000
sleep 0.2
closed_port ::1 8083
sleep 0.5

kill "$(cat "$work/nginx.pid")"
sleep 0.5
# tcpdump drops to its own user, so kill what runs in the namespace, not
# the pid ip netns exec had.
ip netns pids "$ns" | xargs -r kill
wait "$dump" 2>/dev/null || true
dump=
gzip -9 -f -k "$out"
echo "capture.sh: $(stat -c %s "$out") bytes in $out ($(stat -c %s "$out.gz") gzipped), manifest $manifest"
