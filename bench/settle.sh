#!/usr/bin/env bash
# settle.sh — requests in flight when a drain moves a VIP: hactl before drain.Settle (OLD, a git
# revision, default 9c58380) against this checkout (NEW), in the same run, alternating, on the
# 3-host lab, without a grace period (drain_grace 0, as the lab inventory has it).
#
# Why: when a VIP moves, the client's next packet of a connection it opened to the old holder goes
# to the new one, which has no socket for it and answers with a reset. A request in flight at that
# instant fails. Short requests make that rare (the e2e drains lost 1 of ~70 now and then on a
# loaded machine); here every request takes ~REQ_MS (nginx's limit_rate on a file of its own on
# :8080 of every host), so several are in flight at each switch. NEW keeps the old holder serving
# for 2 s after the switch (the connection drain, with the Settle as its grace).
#
# Per cycle and binary: clients start a request through 198.18.0.201:8080 every 50 ms (a new
# connection each, curl, 5 s timeout); `hactl drain lab1`, 1 s, `hactl undrain lab1`, 1 s; then
# the clients stop. A request fails when curl exits non-zero or the body is short. Both binaries
# run against the same lab, applied by NEW (which installs nftables; OLD does not remove it).
#
# Usage (root): CYCLES=5 bash bench/settle.sh    # brings the lab up, applies, takes it down
#   OLD=<rev> picks the old revision, REQ_MS the request's duration, KEEP=1 leaves the lab up.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export HACTL_LAB_DIR=${HACTL_LAB_DIR:-/var/lib/hactl-lab}
LABDIR=$HACTL_LAB_DIR
NEW=${NEW:-$ROOT/bin/hactl}
OLD_REV=${OLD:-9c58380}
CYCLES=${CYCLES:-5}
REQ_MS=${REQ_MS:-500}
VIP=198.18.0.201
# Bytes per request: nginx's limit_rate lets a response's first second's worth (64 KB) go at once,
# then 64 KB/s (limit_rate 64k): ~REQ_MS per request after the first 64 KB.
SIZE=$((65536 + REQ_MS * 65536 / 1000))
ssh_args=(-i "$LABDIR/id_ed25519" -o UserKnownHostsFile="$LABDIR/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes)
work=$(mktemp -d)

on() {
	local h=$1
	shift
	# shellcheck disable=SC2029 # the commands are meant for the host's shell
	ssh "${ssh_args[@]}" "root@198.18.0.$((10 + ${h#lab}))" "$@"
}

cleanup() {
	local h
	if [ -z "${KEEP:-}" ]; then
		bash "$ROOT/e2e/lab/lab.sh" down >/dev/null 2>&1 || true
	else
		for h in lab1 lab2 lab3; do on "$h" 'rm -rf /srv/hactl-settle /etc/nginx/conf.d/zz-settle.conf; systemctl reload nginx' || true; done
	fi
	rm -rf "$work"
}
trap cleanup EXIT

[ -x "$NEW" ] || (cd "$ROOT" && make -s build)
OLDBIN=$work/hactl-old
mkdir -p "$work/old"
git -C "$ROOT" archive "$OLD_REV" | tar -x -C "$work/old"
(cd "$work/old" && go build -o "$OLDBIN" ./cmd/hactl)

bash "$ROOT/e2e/lab/lab.sh" up 3 >/dev/null
"$NEW" apply -i "$LABDIR/lab.hcl" >/dev/null 2>&1 || { echo "apply failed" >&2; exit 1; }
for h in lab1 lab2 lab3; do
	on "$h" "set -e; mkdir -p /srv/hactl-settle; head -c $SIZE /dev/zero > /srv/hactl-settle/f
printf 'server { listen 8080; root /srv/hactl-settle; limit_rate 64k; keepalive_timeout 0; }\n' > /etc/nginx/conf.d/zz-settle.conf
nginx -t -q && systemctl reload nginx"
done
sleep 1

# clients OUT: a request every 50 ms until $work/stop exists; one line per request: "ok" or
# "fail CODE BYTES".
clients() {
	local out=$1
	while [ ! -e "$work/stop" ]; do
		(
			b=$(curl -s --noproxy '*' -m 5 -o /dev/null -w '%{size_download}' "http://$VIP:8080/f") && c=0 || c=$?
			if [ "$c" = 0 ] && [ "$b" = "$SIZE" ]; then echo ok; else echo "fail $c ${b:-0}"; fi
		) >>"$out" &
		sleep 0.05
	done
	wait
}

declare -A fails total secs
for ((i = 1; i <= CYCLES; i++)); do
	for v in old new; do
		bin=$NEW
		[ "$v" = old ] && bin=$OLDBIN
		rm -f "$work/stop"
		out=$work/$v.$i
		: >"$out"
		clients "$out" &
		cpid=$!
		sleep 1
		t0=$(date +%s%N)
		"$bin" drain -i "$LABDIR/lab.hcl" lab1 >"$work/log" 2>&1 || { echo "$v drain failed:" >&2; cat "$work/log" >&2; exit 1; }
		sleep 1
		"$bin" undrain -i "$LABDIR/lab.hcl" lab1 >"$work/log" 2>&1 || { echo "$v undrain failed:" >&2; cat "$work/log" >&2; exit 1; }
		t1=$(date +%s%N)
		sleep 1
		touch "$work/stop"
		wait "$cpid"
		n=$(wc -l <"$out")
		f=$(grep -c '^fail' "$out" || true)
		s=$(((t1 - t0) / 1000000 - 1000))
		echo "cycle $i $v: $f failed of $n requests; drain + undrain $((s / 1000)).$((s % 1000 / 100)) s"
		fails[$v]=$((${fails[$v]:-0} + f))
		total[$v]=$((${total[$v]:-0} + n))
		secs[$v]=$((${secs[$v]:-0} + s))
	done
done
for v in old new; do
	s=$((${secs[$v]} / CYCLES))
	echo "$v: ${fails[$v]} failed of ${total[$v]} requests (~${REQ_MS} ms each) over $CYCLES drain+undrain cycles; drain + undrain $((s / 1000)).$((s % 1000 / 100)) s on average"
done
