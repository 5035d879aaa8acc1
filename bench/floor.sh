#!/usr/bin/env bash
# The no-change figures of issue 24 in ONE run, on the lab as it is: hactl's
# no-change apply, status and plan against the same run's Ansible (no-change
# site.yml, pipelining, no fact gathering) and against the SSH floor (one
# `ssh host true` to every host, all in parallel: a handshake plus one round
# trip), runs alternating so that a drift of the machine's speed hits all
# alike; with BASE set, that binary (e.g. main's) is measured in the same
# rotation. Prints medians, ratios, the round trips per host (`-v`) and the
# load average before and after.
#
#   bash bench/floor.sh setup N   fresh lab of N hosts, converged by hactl, python3 for Ansible
#   bash bench/floor.sh prep N    python3 for Ansible only (the lab is up and converged)
#   bash bench/floor.sh run N     measure (the lab must be up and converged)
#   bash bench/floor.sh mem N     no-change apply under /usr/bin/time, alternating
#                                 with BASE: wall, CPU (user+sys) and peak RSS
#
# Run it holding the lab turn lock (flock /run/hactl-lab.turn …) and bring
# the lab down after. Environment: RUNS (5), HACTL (bin/hactl), BASE (none),
# ANSIBLE (1: include Ansible), OUT (bench/out), PARALLEL (apply's
# --parallel; default N, every host at once).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export HACTL_LAB_DIR=${HACTL_LAB_DIR:-/var/lib/hactl-lab}
LABDIR=$HACTL_LAB_DIR
INV=$LABDIR/lab.hcl
HACTL=${HACTL:-$ROOT/bin/hactl}
BASE=${BASE:-}
RUNS=${RUNS:-5}
ANSIBLE=${ANSIBLE:-1}
PARALLEL=${PARALLEL:-}
OUT=${OUT:-$ROOT/bench/out}
export NO_COLOR=1 ANSIBLE_CONFIG="$ROOT/bench/ansible/ansible.cfg" ANSIBLE_NOCOLOR=1
mkdir -p "$OUT/log"
log() { printf '%s floor: %s\n' "$(date +%T)" "$*" >&2; }

ssh_args=(-i "$LABDIR/id_ed25519" -o UserKnownHostsFile="$LABDIR/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes)
addr() { echo "198.18.0.$((10 + $1))"; }

setup() {
	local n=$1
	bash "$ROOT/e2e/lab/lab.sh" down >/dev/null 2>&1 || true
	bash "$ROOT/e2e/lab/lab.sh" up "$n" >"$OUT/log/lab-up.log" 2>&1
	local t0=$EPOCHREALTIME
	"$HACTL" apply -i "$INV" --parallel "$n" >"$OUT/log/floor-cold.log" 2>&1
	log "cold apply of $n hosts: $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s, load $(cut -d' ' -f1-3 /proc/loadavg)"
	prep "$n"
}

prep() { # N: python3 on the hosts and a warm-up run for Ansible (the lab is up and converged)
	local n=$1 i
	[ "$ANSIBLE" = 1 ] || return 0
	bash "$ROOT/bench/ansible/inventory.sh" "$n" "$LABDIR" >"$OUT/ansible-hosts.yml"
	local pids=()
	for ((i = 1; i <= n; i++)); do
		ssh "${ssh_args[@]}" "root@$(addr "$i")" 'DEBIAN_FRONTEND=noninteractive apt-get -q -y install python3 python3-apt' >"$OUT/log/prereq-$i.log" 2>&1 &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i"; done
	rm -rf "$OUT/render/base"
	"$HACTL" render -i "$INV" -o "$OUT/render/base" >/dev/null
	# Warm: Ansible's first run opens its ControlPersist masters.
	ansible-playbook -i "$OUT/ansible-hosts.yml" -e "render_dir=$OUT/render/base" "$ROOT/bench/ansible/site.yml" >"$OUT/log/floor-ansible-warm.log" 2>&1
}

# t NAME CMD...: one timed run, appended to $OUT/floor.csv.
t() {
	local name=$1 t0 rc=0
	shift
	t0=$EPOCHREALTIME
	"$@" >"$OUT/log/floor-$name.log" 2>&1 || rc=$?
	echo "$name,$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'),$rc" >>"$OUT/floor.csv"
}

floor() { # N: one `ssh host true` per host, in parallel
	local i pids=()
	for ((i = 1; i <= $1; i++)); do
		ssh "${ssh_args[@]}" "root@$(addr "$i")" true &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i"; done
}

run() {
	local n=$1 r p=${PARALLEL:-$1}
	: >"$OUT/floor.csv"
	log "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	for ((r = 1; r <= RUNS; r++)); do
		t floor floor "$n"
		t apply "$HACTL" apply -i "$INV" --parallel "$p" -v
		[ -z "$BASE" ] || t base-apply "$BASE" apply -i "$INV" --parallel "$p"
		t status "$HACTL" status -i "$INV" -v
		[ -z "$BASE" ] || t base-status "$BASE" status -i "$INV"
		t plan "$HACTL" plan -i "$INV" -v
		[ -z "$BASE" ] || t base-plan "$BASE" plan -i "$INV"
		[ "$ANSIBLE" != 1 ] || t ansible ansible-playbook -i "$OUT/ansible-hosts.yml" -e "render_dir=$OUT/render/base" "$ROOT/bench/ansible/site.yml"
	done
	log "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
	grep -v ',0$' "$OUT/floor.csv" | sed 's/^/FAILED RUN: /' >&2 || true
	python3 - "$OUT/floor.csv" <<'PY'
import csv, statistics, sys
runs = {}
for name, wall, rc in csv.reader(open(sys.argv[1])):
    runs.setdefault(name, []).append(float(wall))
med = {k: statistics.median(v) for k, v in runs.items()}
fl = med["floor"]
for k in ["floor", "apply", "base-apply", "status", "base-status", "plan", "base-plan", "ansible"]:
    if k in med:
        print(f"{k:12s} median {med[k]:7.3f} s  (min {min(runs[k]):.3f}, max {max(runs[k]):.3f}, {len(runs[k])} runs)  {med[k]/fl:5.2f}x floor")
if "ansible" in med:
    print(f"Ansible / hactl no-change apply: {med['ansible']/med['apply']:.1f}x")
    if "base-apply" in med:
        print(f"Ansible / base no-change apply:  {med['ansible']/med['base-apply']:.1f}x")
PY
	for c in apply status plan; do
		echo "round trips, $c: $(sed -n 's/^round trips: //p' "$OUT/log/floor-$c.log" | tail -n 1)"
	done
}

mem() { # N: RUNS alternating no-change applies under /usr/bin/time
	local n=$1 r p=${PARALLEL:-$1} b
	log "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	: >"$OUT/mem.txt"
	for ((r = 1; r <= RUNS; r++)); do
		for b in "$HACTL" ${BASE:+"$BASE"}; do
			/usr/bin/time -a -o "$OUT/mem.txt" -f "$([ "$b" = "$HACTL" ] && echo new || echo base) %e %U %S %M" \
				"$b" apply -i "$INV" --parallel "$p" >"$OUT/log/floor-mem.log" 2>&1
		done
	done
	log "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
	python3 - "$OUT/mem.txt" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, wall, user, sys_, rss = line.split()
    rows.setdefault(name, []).append((float(wall), float(user) + float(sys_), int(rss) / 1024))
for name, rs in rows.items():
    print(f"{name:5s} apply: wall median {statistics.median(r[0] for r in rs):.3f} s, CPU median {statistics.median(r[1] for r in rs):.3f} s, peak RSS max {max(r[2] for r in rs):.1f} MiB ({len(rs)} runs)")
PY
}

case "${1:-}" in
setup) setup "${2:-3}" ;;
mem) mem "${2:-3}" ;;
prep) prep "${2:-3}" ;;
run) run "${2:-3}" ;;
*) sed -n '2,21p' "$0" >&2; exit 2 ;;
esac
