#!/usr/bin/env bash
# What a no-change run costs the hosts: each lab host's CPU (its cgroup's
# cpu.stat usage_usec, the lab's idle rate measured just before subtracted),
# per host and per run, for `ssh host true` (sshd's own cost), apply, status
# and plan; with BASE set, that binary alternates with HACTL in the same
# rounds. At 30 hosts on this machine's 2 cores, host CPU is what a
# no-change run waits for (BENCHMARKS.md).
#
#   bash bench/hostcpu.sh N    the lab must be up with N hosts and converged
#
# Run it holding the lab turn lock (flock /run/hactl-lab.turn …) and bring
# the lab down after. Environment: RUNS (10 per round), ROUNDS (2), HACTL
# (bin/hactl), BASE (none).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LABDIR=${HACTL_LAB_DIR:-/var/lib/hactl-lab}
INV=$LABDIR/lab.hcl
HACTL=${HACTL:-$ROOT/bin/hactl}
BASE=${BASE:-}
RUNS=${RUNS:-10}
ROUNDS=${ROUNDS:-2}
N=${1:-3}
CG=/sys/fs/cgroup/unified/hactl-lab
[ -d "$CG" ] || CG=/sys/fs/cgroup/hactl-lab
ssh_args=(-i "$LABDIR/id_ed25519" -o UserKnownHostsFile="$LABDIR/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes)
stats=()
for ((i = 1; i <= N; i++)); do
	[ -r "$CG/lab$i/cpu.stat" ] || { echo "hostcpu: no $CG/lab$i/cpu.stat: is the lab up with $N hosts?" >&2; exit 1; }
	stats+=("$CG/lab$i/cpu.stat")
done
usage() { awk '$1 == "usage_usec" { s += $2 } END { print s }' "${stats[@]}"; }

a=$(usage); t0=$EPOCHREALTIME; sleep 5; b=$(usage); t1=$EPOCHREALTIME
IDLE=$(awk -v a="$a" -v b="$b" -v t0="$t0" -v t1="$t1" -v n="$N" 'BEGIN { print (b - a) / (t1 - t0) / n }')
echo "idle: $(awk -v i="$IDLE" 'BEGIN { printf "%.1f", i / 1000 }') ms of CPU per second per host; load $(cut -d' ' -f1-3 /proc/loadavg)"

floor() {
	local i pids=()
	for ((i = 1; i <= N; i++)); do
		ssh "${ssh_args[@]}" "root@198.18.0.$((10 + i))" true &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i"; done
}

# m NAME CMD…: RUNS runs of CMD; host CPU per host per run, idle subtracted.
m() {
	local name=$1 a b t0 t1 r
	shift
	a=$(usage); t0=$EPOCHREALTIME
	for ((r = 0; r < RUNS; r++)); do "$@" >/dev/null 2>&1 || echo "hostcpu: $name failed" >&2; done
	b=$(usage); t1=$EPOCHREALTIME
	awk -v name="$name" -v a="$a" -v b="$b" -v t0="$t0" -v t1="$t1" -v r="$RUNS" -v n="$N" -v idle="$IDLE" \
		'BEGIN { printf "%-12s %6.1f ms of host CPU per host per run  (wall %.3f s per run)\n", name, ((b - a) - idle * (t1 - t0) * n) / r / n / 1000, (t1 - t0) / r }'
}

for ((round = 1; round <= ROUNDS; round++)); do
	echo "round $round"
	m floor floor
	for c in apply status plan; do
		m "$c" "$HACTL" "$c" -i "$INV"
		[ -z "$BASE" ] || m "base-$c" "$BASE" "$c" -i "$INV"
	done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
