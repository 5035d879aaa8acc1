#!/usr/bin/env bash
# hactl vs Ansible on the container-VM lab. See BENCHMARKS.md for what is
# measured and why; `make bench` runs `bash bench/run.sh all`.
#
#   bash bench/run.sh all        setup, cold, steady (no-change + one-file), scale, report
#   bash bench/run.sh setup      build bin/hactl; install ansible-core if missing
#   bash bench/run.sh cold       fresh lab: hactl cold apply; fresh lab: python3 + Ansible cold apply
#   bash bench/run.sh steady     fresh lab converged by hactl, then alternating hactl / Ansible:
#                                RUNS no-change runs each, then RUNS one-file-changed runs each
#   bash bench/run.sh scale      for N in SCALE_NS: fresh lab, hactl cold apply, RUNS no-change runs
#   bash bench/run.sh report     print the table, write BENCHMARKS.md
#
# The lab is shared: every session that touches it runs under
# flock $LAB_LOCK (one session at a time, released in between), starts from
# `lab.sh down; lab.sh up N`, and the lab is left down at the end.
# Environment: RUNS (7), SCALE_NS ("3 10 30"), OUT (bench/out), LAB_LOCK
# (/run/hactl-lab.turn), BENCH_LOCKED=1 when the caller already holds
# the lock, HACTL_LAB_DIR (/var/lib/hactl-lab).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$ROOT/bench/run.sh"
LAB="$ROOT/e2e/lab/lab.sh"
HACTL="$ROOT/bin/hactl"
export HACTL_LAB_DIR=${HACTL_LAB_DIR:-/var/lib/hactl-lab}
LABDIR=$HACTL_LAB_DIR
INV="$LABDIR/lab.hcl"
RUNS=${RUNS:-7}
SCALE_NS=${SCALE_NS:-"3 10 30"}
OUT=${OUT:-$ROOT/bench/out}
LAB_LOCK=${LAB_LOCK:-/run/hactl-lab.turn}
CSV="$OUT/results.csv"
export NO_COLOR=1
export ANSIBLE_CONFIG="$ROOT/bench/ansible/ansible.cfg"
export ANSIBLE_NOCOLOR=1

log() { printf '%s bench: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "$*"; exit 1; }

# locked CMD...: run this script's CMD while holding the lab lock.
locked() {
	if [ "${BENCH_LOCKED:-}" = 1 ]; then
		bash "$SELF" "$@"
	else
		log "waiting for the lab lock $LAB_LOCK"
		BENCH_LOCKED=1 flock "$LAB_LOCK" bash "$SELF" "$@"
	fi
}

fresh_lab() { # N
	bash "$LAB" down >"$OUT/lab.log" 2>&1 || true
	bash "$LAB" up "$1" >>"$OUT/lab.log" 2>&1 || { tail -20 "$OUT/lab.log" >&2; die "lab up $1 failed"; }
}

# record TOOL SCENARIO HOSTS RUN WALL_S RSS_KB PKG_S
record() { echo "$1,$2,$3,$4,$5,$6,$7" >>"$CSV"; }

# timed LOG CMD...: runs CMD with stdout+stderr into LOG; sets WALL (seconds,
# from the shell's microsecond clock) and RSS (peak KiB of the largest
# process, from /usr/bin/time). Fails when CMD fails.
timed() {
	local logf=$1 tf rc=0 t0 t1
	shift
	tf=$(mktemp)
	t0=$EPOCHREALTIME
	/usr/bin/time -f '%M %U %S' -o "$tf" "$@" >"$logf" 2>&1 || rc=$?
	t1=$EPOCHREALTIME
	WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	RSS=$(tail -n 1 "$tf" | cut -d' ' -f1)
	# CPU seconds (user + system, the command and its children) per log.
	echo "$(basename "$logf" .log) $WALL $(tail -n 1 "$tf" | cut -d' ' -f2,3)" >>"$OUT/cpu.txt"
	rm -f "$tf"
	if [ "$rc" != 0 ]; then
		tail -n 30 "$logf" >&2
		die "failed (exit $rc): $* (log: $logf)"
	fi
}

# pkg_time LOG: the longest "packages" step of a hactl run (its hosts install
# in parallel), from the per-step elapsed time hactl prints on stderr.
pkg_time() {
	awk '$2 == "packages" && $3 == "changed" { s = $NF; sub(/s$/, "", s); if (s + 0 > m) m = s + 0 } END { printf "%.2f", m + 0 }' "$1"
}

hactl_apply() { # LOG INVENTORY [ARGS...]
	local logf=$1 inv=$2
	shift 2
	timed "$logf" "$HACTL" apply -i "$inv" "$@"
}

ansible_inventory() { # N -> $OUT/ansible-hosts.yml
	bash "$ROOT/bench/ansible/inventory.sh" "$1" "$LABDIR" >"$OUT/ansible-hosts.yml"
}

ansible_apply() { # LOG RENDER_DIR
	timed "$1" ansible-playbook -i "$OUT/ansible-hosts.yml" -e "render_dir=$2" "$ROOT/bench/ansible/site.yml"
}

# Ansible's prerequisite on the targets (hactl needs neither): python3 and
# python3-apt from the lab's repository, all hosts in parallel. The apt lists
# are emptied again afterwards and dated like the image's, as on a fresh host:
# Ansible's cold run must pay its own apt-get update, like hactl's (its
# cache_valid_time looks at the lists directory's age).
ansible_prereq() { # N
	local n=$1 i pids=()
	for ((i = 1; i <= n; i++)); do
		ssh -i "$LABDIR/id_ed25519" -o UserKnownHostsFile="$LABDIR/known_hosts" -o StrictHostKeyChecking=yes \
			-o BatchMode=yes "root@198.18.0.$((10 + i))" \
			'export DEBIAN_FRONTEND=noninteractive; apt-get -q update && apt-get -q -y install python3 python3-apt && find /var/lib/apt/lists -maxdepth 1 -type f -delete && touch -d 2000-01-01 /var/lib/apt/lists' \
			>"$OUT/log/prereq-lab$i.log" 2>&1 &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || die "python3 install failed (see $OUT/log/prereq-*.log)"; done
}

render() { # INVENTORY DIR
	rm -rf "$2"
	"$HACTL" render -i "$1" -o "$2" >/dev/null
}

# changed_by_hactl LOG: how many changes a hactl apply --output json reported.
changed_sum() { python3 -c 'import json,sys; print(sum(h["changed"] for h in json.load(open(sys.argv[1]))["hosts"]))' "$1"; }

cmd_setup() {
	mkdir -p "$OUT/log"
	(cd "$ROOT" && make build >/dev/null)
	if ! command -v ansible-playbook >/dev/null; then
		log "installing ansible-core (Debian package)"
		apt-get install -y -o DPkg::Lock::Timeout=300 ansible-core >"$OUT/log/apt.log" 2>&1 ||
			{ apt-get update -o DPkg::Lock::Timeout=300 >>"$OUT/log/apt.log" 2>&1 &&
				apt-get install -y -o DPkg::Lock::Timeout=300 ansible-core >>"$OUT/log/apt.log" 2>&1; }
	fi
	[ -f "$CSV" ] || echo "tool,scenario,hosts,run,wall_s,rss_kb,pkg_s" >"$CSV"
}

# Sessions (run with the lab lock held) -------------------------------------

session_cold() {
	log "cold: fresh lab, hactl"
	fresh_lab 3
	hactl_apply "$OUT/log/cold-hactl.log" "$INV"
	record hactl cold 3 1 "$WALL" "$RSS" "$(pkg_time "$OUT/log/cold-hactl.log")"
	log "cold: hactl $WALL s"

	log "cold: fresh lab, python3 + python3-apt, Ansible"
	fresh_lab 3
	render "$INV" "$OUT/render/base"
	ansible_inventory 3
	local t0=$EPOCHREALTIME
	ansible_prereq 3
	record ansible prereq 3 1 "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')" 0 0
	ansible_apply "$OUT/log/cold-ansible.log" "$OUT/render/base"
	record ansible cold 3 1 "$WALL" "$RSS" 0
	log "cold: Ansible $WALL s"
	# Same end state? hactl on the Ansible-converged lab must find nothing to do.
	"$HACTL" apply -i "$INV" --output json >"$OUT/log/equivalence.json" 2>"$OUT/log/equivalence.log" ||
		die "hactl apply after Ansible failed (see $OUT/log/equivalence.log)"
	local c
	c=$(changed_sum "$OUT/log/equivalence.json")
	echo "$c" >"$OUT/equivalence"
	log "cold: hactl apply after Ansible's cold apply changed $c item(s)"
	bash "$LAB" down >>"$OUT/lab.log" 2>&1
}

session_steady() {
	log "steady: fresh lab converged by hactl, python3 for Ansible"
	fresh_lab 3
	render "$INV" "$OUT/render/base"
	ansible_inventory 3
	ansible_prereq 3
	hactl_apply "$OUT/log/steady-setup.log" "$INV"
	# Warm both: Ansible's first run opens its ControlPersist masters.
	ansible_apply "$OUT/log/steady-warm-ansible.log" "$OUT/render/base"
	local i
	for ((i = 1; i <= RUNS; i++)); do
		hactl_apply "$OUT/log/nochange-hactl-$i.log" "$INV"
		record hactl nochange 3 "$i" "$WALL" "$RSS" 0
		local h=$WALL
		ansible_apply "$OUT/log/nochange-ansible-$i.log" "$OUT/render/base"
		record ansible nochange 3 "$i" "$WALL" "$RSS" 0
		log "no-change $i: hactl $h s, Ansible $WALL s"
	done
	grep -q 'changed=0' "$OUT/log/nochange-ansible-1.log" || die "Ansible's no-change run changed something"

	# One file per host: health_check interval 2 <-> 3 (keepalived.conf only).
	# hactl sets 3, Ansible sets 2 back, and so on: every run changes one file.
	sed 's/interval = 2/interval = 3/' "$INV" >"$OUT/lab-interval3.hcl"
	grep -q 'interval = 3' "$OUT/lab-interval3.hcl" || die "no health_check interval in $INV"
	for ((i = 1; i <= RUNS; i++)); do
		hactl_apply "$OUT/log/onefile-hactl-$i.log" "$OUT/lab-interval3.hcl"
		record hactl onefile 3 "$i" "$WALL" "$RSS" 0
		local h=$WALL
		ansible_apply "$OUT/log/onefile-ansible-$i.log" "$OUT/render/base"
		record ansible onefile 3 "$i" "$WALL" "$RSS" 0
		log "one-file $i: hactl $h s, Ansible $WALL s"
	done
	# changed=2 per host: the copy and the keepalived reload it notified.
	grep -q 'changed=2 ' "$OUT/log/onefile-ansible-1.log" || die "Ansible's one-file run did not change exactly one file"
	bash "$LAB" down >>"$OUT/lab.log" 2>&1
}

session_scale() { # N
	local n=$1 i
	log "scale: fresh lab of $n, hactl cold apply"
	fresh_lab "$n"
	# The machine's load during the cold apply (issue 23: a loaded 30-host
	# cold apply once lost every host lock): the 1-minute average every 2 s.
	(while :; do cut -d' ' -f1 /proc/loadavg; sleep 2; done) >"$OUT/load-scale-$n.txt" &
	local sampler=$!
	hactl_apply "$OUT/log/scale-$n-cold.log" "$INV" --parallel "$n"
	kill "$sampler"
	record hactl "scale-cold" "$n" 1 "$WALL" "$RSS" "$(pkg_time "$OUT/log/scale-$n-cold.log")"
	log "scale $n: cold $WALL s, peak 1-min load $(sort -n "$OUT/load-scale-$n.txt" | tail -n 1)"
	for ((i = 1; i <= RUNS; i++)); do
		hactl_apply "$OUT/log/scale-$n-nochange-$i.log" "$INV" --parallel "$n"
		record hactl "scale-nochange" "$n" "$i" "$WALL" "$RSS" 0
		hactl_apply "$OUT/log/scale-$n-nochange-default-$i.log" "$INV"
		record hactl "scale-nochange-p10" "$n" "$i" "$WALL" "$RSS" 0
	done
	log "scale $n: no-change done"
	bash "$LAB" down >>"$OUT/lab.log" 2>&1
}

cmd_report() { python3 "$ROOT/bench/report.py" "$OUT" "$ROOT"; }

main() {
	local cmd=${1:-all}
	shift || true
	case "$cmd" in
	setup) cmd_setup ;;
	cold | steady)
		cmd_setup
		locked "_$cmd"
		;;
	scale)
		cmd_setup
		local n
		for n in $SCALE_NS; do locked _scale "$n"; done
		;;
	report) cmd_report ;;
	all)
		rm -rf "$OUT"
		cmd_setup
		locked _cold
		locked _steady
		local n
		for n in $SCALE_NS; do locked _scale "$n"; done
		cmd_report
		;;
	_cold) session_cold ;;
	_steady) session_steady ;;
	_scale) session_scale "$@" ;;
	*)
		sed -n '2,20p' "$SELF" >&2
		exit 2
		;;
	esac
}

main "$@"
