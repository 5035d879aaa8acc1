#!/usr/bin/env bash
# drainrace.sh — who claims a draining master's VIP: a first step at priority 1 (drain file -253,
# what `hactl drain` wrote before) against drain.Step's value (-3 in the lab: lab1's 101 just below
# its first backup lab2's 99 and above lab3's 97), in the same run, alternating, on the 3-host lab.
#
# Why: a VRRP backup restarts its master-down timer on adverts of its own priority or higher and
# ignores lower ones. At priority 1 both backups ignore lab1, and their timers end (256-99)/256 s
# and (256-97)/256 s after the last advert they accepted: 8 ms apart, so a first backup woken late
# loses the VIP to the second for a moment (the VIP moves twice; requests in flight are cut). At
# -3, lab1's adverts (98) keep lab3 waiting: lab2 alone can claim.
#
# Per cycle and variant: lab1's drain file := V; wait until 198.18.0.201 is off lab1; 1 s more; did
# lab3's keepalived enter MASTER for VI_1 (its journal since the write)? Then 0, and wait for the VIP
# back on lab1 alone. The race needs a first backup that wakes late, which a loaded machine makes
# happen now and then (the e2e tests saw it with three labs on 2 cores): STALL (default 1300 ms)
# makes it happen every time by stopping lab2's keepalived (SIGSTOP) from 2.5 s after the write for
# that long, across the moment its master-down timer ends (2.6–3.6 s after the write). STALL=0 is a
# quiet lab; LOAD=N adds N busy loops at nice 0 beside it.
#
# Usage (root): CYCLES=10 bash bench/drainrace.sh    # brings the lab up, applies, takes it down
#   KEEP=1 leaves the lab up. Output: one line per move, then a summary per variant.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export HACTL_LAB_DIR=${HACTL_LAB_DIR:-/var/lib/hactl-lab}
LABDIR=$HACTL_LAB_DIR
HACTL=${HACTL:-$ROOT/bin/hactl}
CYCLES=${CYCLES:-10}
LOAD=${LOAD:-0}
STALL=${STALL:-1300}
VIP=198.18.0.201
ssh_args=(-i "$LABDIR/id_ed25519" -o UserKnownHostsFile="$LABDIR/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes)

addr() { echo "198.18.0.$((10 + ${1#lab}))"; }
on() {
	local h=$1
	shift
	# shellcheck disable=SC2029 # the commands are meant for the host's shell
	ssh "${ssh_args[@]}" "root@$(addr "$h")" "$@"
}
# holds HOST: the VIP is on HOST's eth0 (read in its network namespace: no SSH in the poll).
holds() { ip netns exec "$1" ip -4 -o addr show dev eth0 | grep -q " $VIP/"; }

busy=()
cleanup() {
	local p
	for p in "${busy[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ -z "${KEEP:-}" ]; then bash "$ROOT/e2e/lab/lab.sh" down >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

[ -x "$HACTL" ] || (cd "$ROOT" && make -s build)
bash "$ROOT/e2e/lab/lab.sh" up 3 >/dev/null
"$HACTL" apply -i "$LABDIR/lab.hcl" >/dev/null 2>&1 || { echo "apply failed" >&2; exit 1; }
for ((i = 0; i < LOAD; i++)); do
	sh -c 'while :; do :; done' &
	busy+=($!)
done

write() { on lab1 "printf '%d\n' $1 > /etc/keepalived/hactl-drain.t && mv -f /etc/keepalived/hactl-drain.t /etc/keepalived/hactl-drain"; }
# wait_until TIMEOUT CMD…: poll CMD every 50 ms; the seconds it took, or "timeout".
wait_until() {
	local t0 ms limit=$(($1 * 1000))
	shift
	t0=$(($(date +%s%N) / 1000000))
	while ! "$@"; do
		if (($(date +%s%N) / 1000000 - t0 > limit)); then
			echo timeout
			return
		fi
		sleep 0.05
	done
	ms=$(($(date +%s%N) / 1000000 - t0))
	printf '%d.%02d' $((ms / 1000)) $((ms % 1000 / 10))
}
home() { holds lab1 && ! holds lab2 && ! holds lab3; }
away() { ! holds lab1; }

declare -A moves twice
echo "variant cycle move_s lab3_claimed"
for ((c = 1; c <= CYCLES; c++)); do
	for v in -253 -3; do
		cur=$(on lab3 "journalctl -u keepalived -n 0 --show-cursor -q" | sed -n 's/^-- cursor: //p')
		write "$v"
		stall=
		if [ "$STALL" -gt 0 ]; then
			on lab2 "sleep 2.5; kill -STOP \$(pidof keepalived); sleep $((STALL / 1000)).$(printf '%03d' $((STALL % 1000))); kill -CONT \$(pidof keepalived)" &
			stall=$!
		fi
		took=$(wait_until 20 away)
		if [ -n "$stall" ]; then wait "$stall"; fi
		sleep 1
		n=$(on lab3 "journalctl -u keepalived -q --no-pager --after-cursor='$cur'" | grep -c '(VI_1) Entering MASTER STATE' || true)
		echo "$v $c $took $n"
		moves[$v]=$((${moves[$v]:-0} + 1))
		[ "$n" -gt 0 ] && twice[$v]=$((${twice[$v]:-0} + 1))
		write 0
		back=$(wait_until 20 home)
		[ "$back" = timeout ] && echo "  $VIP did not come home to lab1 alone within 20 s" >&2
		sleep 1
	done
done
echo
echo "summary (lab2's keepalived stopped for ${STALL} ms from 2.5 s after each write; LOAD=$LOAD busy loops; load $(cut -d' ' -f1-3 /proc/loadavg)):"
for v in -253 -3; do
	echo "first step $v: lab3 claimed the VIP in ${twice[$v]:-0} of ${moves[$v]} moves"
done
