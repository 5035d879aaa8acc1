#!/usr/bin/env bash
# lab.sh — the hactl container-VM lab: N Debian 12 hosts booted with systemd-nspawn on one machine.
#
#   lab.sh up [N] [APPS]  bring up hosts lab1..labN (N 1..50, default 3); idempotent, resizes a running lab;
#                   APPS (default 0) app servers app1..appAPPS beside them (see `apps`)
#   lab.sh apps M   run app servers app1..appM (M 0..9) at .21, .22, …: HTTP :8080, TCP :5432, each answering its name
#   lab.sh app stop|start appI   stop or start one app server's responder (its address stays)
#   lab.sh down     stop every host, remove netns/links/mounts/cgroups; keep the cached base and repo
#   lab.sh down-all down in every lane (below), then the default lab's down
#   lab.sh status   print each host and whether it runs and answers SSH
#   lab.sh purge    down, then delete the whole lab directory (caches included)
#   lab.sh image    build (or check) the cached base, repo and client key only; boots nothing
#   lab.sh inventory [N]  print the lab's inventory for N hosts (no root needed)
#   lab.sh test-deps  install what `make test` needs besides Go (keepalived, shellcheck, nftables, chromium)
#   lab.sh lane-exec N CMD…  run CMD in lane N (2..9): another lab beside the default one, in its own
#                   network namespace (e2e/lanes.sh runs the e2e tests in three lanes at once)
#   lab.sh lane-down N  lane N's lab down and its network namespace removed
#
# How it works and why each odd flag is there: e2e/README.md and notes/lab-facts.md.
set -Eeuo pipefail
shopt -s nullglob

LAB=$(realpath -m "${HACTL_LAB_DIR:-/var/lib/hactl-lab}") # absolute: it is written into lab.hcl
# Lanes: several labs at once (the e2e tests run in three, e2e/lanes.sh). Lane 1 is the default lab,
# on this machine's own network. Lane N (2..9) lives in its own network namespace hactl-laneN, with
# its own bridge, the same addresses and VIPs, its own nftables and its own multicast domain, so
# two labs never see each other's traffic; its netns, cgroup and machine names carry the prefix
# lN-, its state is in its own HACTL_LAB_DIR and it shares the default lab's cache (base image and
# package repo, never built from inside a lane: a lane has no route out). `lab.sh lane-exec N CMD`
# sets all of that up and runs CMD (a test binary) inside the lane.
LANE=${HACTL_LAB_LANE:-}
CACHE=$(realpath -m "${HACTL_LAB_CACHE:-$LAB/cache}")
if [ -n "$LANE" ]; then
	if ! [[ $LANE =~ ^[2-9]$ ]] || [ -z "${HACTL_LAB_CACHE:-}" ] || [ "$CACHE" = "$LAB/cache" ]; then
		echo "lab: error: lane '$LANE': a lane is 2..9 with its own HACTL_LAB_DIR and the default lab's HACTL_LAB_CACHE; run it through 'lab.sh lane-exec N CMD'" >&2
		exit 1
	fi
	NS_PREFIX=l$LANE-
	LANE_NS=hactl-lane$LANE
else
	NS_PREFIX=
	LANE_NS=
fi
BRIDGE=hactl0
# The lab's one source: inventory/lab.hcl is its inventory for 3 hosts and the template for N
# (render_inventory). The address plan comes from it too: the gateway's /24, host i at lab1's
# address + i - 1, its VIP at lab1's VIP + i - 1. labkit reads the rendered file.
TEMPLATE=$(realpath -m "$(dirname "${BASH_SOURCE[0]}")/../../inventory/lab.hcl")
tmpl_value() { sed -n "s/^ *$1 *= *\"\([^\"]*\)\".*/\1/p" "$TEMPLATE" | head -n 1; }
[ -r "$TEMPLATE" ] || { echo "lab: error: no template $TEMPLATE" >&2; exit 1; }
GATEWAY=$(tmpl_value gateway)
NET=${GATEWAY%.*}
ADDR1=$(tmpl_value address)
VIP1=$(tmpl_value vip)
VIP1=${VIP1%/*}
if [ "${ADDR1%.*}" != "$NET" ] || [ "${VIP1%.*}" != "$NET" ] || [ "$GATEWAY" != "$NET.1" ]; then
	echo "lab: error: $TEMPLATE: gateway ($GATEWAY), lab1's address ($ADDR1) and VIP ($VIP1) must share one /24, gateway .1" >&2
	exit 1
fi
ADDR_BASE=$((${ADDR1##*.} - 1))
VIP_BASE=$((${VIP1##*.} - 1))
# IPv6: the documentation prefix's lab /64, nothing else and no route out of it. Host i is ::1i
# (::11, ::12, …) and its VIP ::20i, whatever the IPv4 plan.
NET6=2001:db8:18
GATEWAY6=$NET6::1
MAX_HOSTS=50
BOOT_TIMEOUT=${LAB_BOOT_TIMEOUT:-90}      # seconds per host, boot + sshd
STOP_TIMEOUT=${LAB_STOP_TIMEOUT:-20}      # seconds between the one SIGTERM and SIGKILL
SUITE=bookworm
# Bump when the base recipe changes: a cached base with another version is rebuilt.
BASE_VERSION=4
CG_NAME=hactl-lab${LANE:+-l$LANE}

BASE=$CACHE/base
REPO=$CACHE/repo
HOSTS=$LAB/hosts
KEY=$LAB/id_ed25519
KNOWN=$LAB/known_hosts
INVENTORY=$LAB/lab.hcl
INVENTORY_DUAL=$LAB/lab-dualstack.hcl
INVENTORY_V6=$LAB/lab-ipv6.hcl

log() { printf 'lab: %s\n' "$*" >&2; }
die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

addr_of() { echo "$NET.$((ADDR_BASE + $1))"; }
vip_of() { echo "$NET.$((VIP_BASE + $1))"; }
addr6_of() { echo "$NET6::1$1"; }
veth_of() { echo "hactl-lab$1"; }
# ns_of NAME: the network namespace (and nspawn machine name) of host or app server NAME in this lane.
ns_of() { echo "$NS_PREFIX$1"; }

# ---------------------------------------------------------------------------------------------
# Preconditions
# ---------------------------------------------------------------------------------------------

require_root_linux() {
	[ "$(uname -s)" = Linux ] || die "the lab needs Linux (network namespaces, overlayfs, systemd-nspawn); this is $(uname -s)"
	[ "$(id -u)" = 0 ] || die "the lab needs root (it creates network namespaces, a bridge, mounts and cgroups); run: sudo $0 $*"
}

# install_missing WHAT CMD:PKG…: installs the packages whose command is missing, with apt-get.
# Checking commands first keeps a no-op call fast. Returns 1 when something cannot be installed.
install_missing() {
	local what=$1 missing=() pair cmd pkg
	shift
	for pair in "$@"; do
		cmd=${pair%%:*} pkg=${pair#*:}
		command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if ! command -v apt-get >/dev/null 2>&1; then
		log "missing $what (${missing[*]}) and no apt-get: Debian/Ubuntu hosts only"
		return 1
	fi
	log "installing $what: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=300 -qq update >&2 &&
		apt-get -o DPkg::Lock::Timeout=300 -qq install -y --no-install-recommends "${missing[@]}" >&2
}

# The lab's own host tools, once.
ensure_tools() {
	install_missing "host tools" systemd-nspawn:systemd-container debootstrap:debootstrap dpkg-scanpackages:dpkg-dev \
		ssh:openssh-client ssh-keygen:openssh-client ip:iproute2 flock:util-linux setsid:util-linux nsenter:util-linux \
		gzip:gzip sha256sum:coreutils || die "cannot install the lab's host tools (see above)"
}

# What `make test` runs besides Go and the lab: keepalived (`keepalived -t` on rendered configs),
# the shell linter for this script, nft (the e2e tests drop VRRP multicast on the bridge), chromium
# (e2e/report_test.go opens failover-test --report pages in headless Chromium), prometheus (promtool
# tests the shipped alerting rules; e2e/prometheus_test.go scrapes the lab with the server).
# Installed as root when missing; otherwise, or when apt-get fails, the tests that need them skip and say why.
cmd_test_deps() {
	local pairs=(keepalived:keepalived shellcheck:shellcheck nft:nftables chromium:chromium promtool:prometheus prometheus:prometheus curl:curl python3:python3) pair missing=()
	for pair in "${pairs[@]}"; do command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}"); done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" != 0 ]; then
		log "test-deps: not root, not installing ${missing[*]}: the tests that need them skip"
		return 0
	fi
	install_missing "test tools" "${pairs[@]}" || log "test-deps: could not install ${missing[*]}: the tests that need them skip"
	return 0
}

ip2int() {
	local a b c d
	IFS=. read -r a b c d <<<"$1"
	echo $(((a << 24) | (b << 16) | (c << 8) | d))
}

# Refuses when 198.18.0.0/24 (or a prefix overlapping it) is already in use by anything but our bridge:
# two owners of one subnet would send the hosts' traffic somewhere unexpected.
check_subnet_free() {
	local ours line prefix dev net plen l a b
	ours=$(ip2int "$NET.0")
	while read -r line; do
		prefix=$(awk '{print $1}' <<<"$line")
		dev=$(sed -n 's/.* dev \([^ ]*\).*/\1/p' <<<"$line")
		[ "$prefix" = default ] && continue
		[ "$dev" = "$BRIDGE" ] && continue
		net=${prefix%/*}
		plen=32
		[[ $prefix == */* ]] && plen=${prefix#*/}
		[ "$plen" -eq 0 ] && continue
		l=$((plen < 24 ? plen : 24))
		a=$(($(ip2int "$net") >> (32 - l)))
		b=$((ours >> (32 - l)))
		[ "$a" -eq "$b" ] && die "$NET.0/24 is already used on this machine ($line); the lab needs it for bridge $BRIDGE — remove that route/address or use another machine"
	done < <({
		ip -4 route show table all type unicast 2>/dev/null
		ip -4 -o addr show | awk '{print $4, "dev", $2}'
	} | grep -E '^[0-9]')
	return 0
}

# The same for the lab's IPv6 /64: refused when a route or address of 2001:db8:18::/64 (or a prefix
# containing it) is on anything but our bridge.
check_subnet6_free() {
	local line dev
	while read -r line; do
		dev=$(sed -n 's/.* dev \([^ ]*\).*/\1/p' <<<"$line")
		[ "$dev" = "$BRIDGE" ] && continue
		[ -z "$dev" ] && continue
		die "$NET6::/64 is already used on this machine ($line); the lab needs it for bridge $BRIDGE — remove that route/address or use another machine"
	done < <({
		ip -6 route show table all to root "$NET6::/64" 2>/dev/null
		ip -6 route show table all match "$NET6::/64" 2>/dev/null | grep -v '^default'
	} | grep -v '^\(local\|anycast\|multicast\) ' | grep -E '^[0-9a-f]')
	return 0
}

# Bridged frames pass the root FORWARD chain when br_netfilter is loaded; a DROP policy there would
# silently cut host-to-host traffic (VRRP included).
warn_forward_drop() {
	[ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 0)" = 1 ] || return 0
	if command -v nft >/dev/null 2>&1 && nft list ruleset 2>/dev/null | grep -Eq 'hook forward.*policy drop'; then
		log "warning: br_netfilter is loaded and a FORWARD chain has policy drop: traffic between lab hosts may be dropped"
	elif command -v iptables >/dev/null 2>&1 && iptables -S FORWARD 2>/dev/null | grep -q -- '-P FORWARD DROP'; then
		log "warning: br_netfilter is loaded and iptables FORWARD policy is DROP: traffic between lab hosts may be dropped"
	fi
}

# ---------------------------------------------------------------------------------------------
# Cached base root filesystem and local apt repository
# ---------------------------------------------------------------------------------------------

debian_mirror() {
	local uri=""
	if [ -r /etc/apt/sources.list.d/debian.sources ]; then
		# First URIs line whose suites are the main archive (not -security).
		uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ && u != "" && $0 !~ /security/ {print u; exit}' /etc/apt/sources.list.d/debian.sources)
	fi
	if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
		uri=$(awk '$1 == "deb" && $0 !~ /security/ && $0 ~ /debian/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' /etc/apt/sources.list)
	fi
	echo "${uri:-http://deb.debian.org/debian}"
}

in_chroot() { LC_ALL=C DEBIAN_FRONTEND=noninteractive chroot "$1" "${@:2}"; }

umount_under() { # unmounts everything mounted at or below $1, deepest first
	local dir mp tries mps
	dir=$(realpath -m "$1")
	for tries in 1 2 3 4 5 6 7 8 9 10; do
		mapfile -t mps < <(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r)
		[ ${#mps[@]} -eq 0 ] && return 0
		for mp in "${mps[@]}"; do umount "$mp" 2>/dev/null || true; done
		[ "$tries" -ge 5 ] && for mp in "${mps[@]}"; do umount -l "$mp" 2>/dev/null || true; done
		sleep 0.1
	done
	die "cannot unmount everything under $dir"
}

safe_rm() { # never rm -rf a tree that still has something mounted in it
	umount_under "$1"
	rm -rf --one-file-system "$1"
}

build_base() {
	local t0 tmp repo_tmp mirror
	t0=$(now)
	mirror=$(debian_mirror)
	tmp=$CACHE/base.tmp
	repo_tmp=$CACHE/repo.tmp
	safe_rm "$tmp"
	rm -rf "$repo_tmp"
	mkdir -p "$tmp" "$repo_tmp"
	log "building the Debian 12 base with debootstrap from $mirror (once; ~1 min)"
	debootstrap --variant=minbase \
		--include=systemd,systemd-sysv,dbus,openssh-server,iproute2,iputils-ping,procps,sudo,curl \
		"$SUITE" "$tmp" "$mirror" >"$CACHE/debootstrap.log" 2>&1 ||
		die "debootstrap failed; see $CACHE/debootstrap.log"

	# The chroot still has this machine's network: fetch every package the tests and benchmarks will
	# install later, with all dependencies, into the local repository. arping and iputils-arping conflict,
	# so the second is fetched on its own. python3 + python3-apt serve the Ansible benchmark. ndisc6 is
	# the notify script's IPv6 neighbour solicitation (a base cached before it came gets it from
	# ensure_repo_extra).
	cp /etc/resolv.conf "$tmp/etc/resolv.conf"
	mount -t proc proc "$tmp/proc"
	{
		in_chroot "$tmp" apt-get -qq update &&
			in_chroot "$tmp" apt-get -qq install -y --download-only keepalived nginx arping ndisc6 python3 python3-apt &&
			in_chroot "$tmp" apt-get -qq install -y --download-only iputils-arping
	} >"$CACHE/repo-download.log" 2>&1 || {
		umount "$tmp/proc"
		die "downloading packages for the local repo failed; see $CACHE/repo-download.log"
	}
	mv "$tmp"/var/cache/apt/archives/*.deb "$repo_tmp/"
	in_chroot "$tmp" apt-get clean

	# A user like a cloud image's: same key as root (added per host), passwordless sudo.
	in_chroot "$tmp" useradd --create-home --shell /bin/bash ops
	printf 'ops ALL=(ALL) NOPASSWD:ALL\n' >"$tmp/etc/sudoers.d/ops"
	chmod 0440 "$tmp/etc/sudoers.d/ops"
	# apt's timers would take the dpkg lock in the middle of a test; a lab has no use for them.
	in_chroot "$tmp" systemctl mask apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1
	in_chroot "$tmp" systemctl set-default multi-user.target >/dev/null 2>&1
	# nspawn's console is a read-only log here: a getty on it only costs a process per host.
	in_chroot "$tmp" systemctl mask console-getty.service >/dev/null 2>&1
	umount "$tmp/proc"

	# Identity that every overlay would otherwise share: generated per host at start.
	rm -f "$tmp"/etc/ssh/ssh_host_* "$tmp/var/lib/dbus/machine-id"
	: >"$tmp/etc/machine-id"
	printf '# hactl lab: no DNS, hosts are reached by address\n' >"$tmp/etc/resolv.conf"
	cat >"$tmp/etc/ssh/sshd_config.d/hactl-lab.conf" <<-'EOF'
		# hactl lab: key-only logins, one host key (generated per host), no DNS lookups.
		HostKey /etc/ssh/ssh_host_ed25519_key
		PermitRootLogin prohibit-password
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		UseDNS no
	EOF
	# The local repository is the only package source, and no lists are cached: like a fresh image,
	# `apt-get update` comes first.
	rm -f "$tmp"/etc/apt/sources.list.d/*
	printf 'deb [trusted=yes] file:/srv/labrepo ./\n' >"$tmp/etc/apt/sources.list"
	rm -rf "$tmp"/var/lib/apt/lists/*
	mkdir -p "$tmp/var/lib/apt/lists/partial" "$tmp/srv/labrepo"

	make_repo "$repo_tmp"
	safe_rm "$BASE"
	rm -rf "$REPO"
	mv "$repo_tmp" "$REPO"
	echo "$BASE_VERSION" >"$tmp/.hactl-lab-base"
	mv "$tmp" "$BASE"
	log "base and local repo ready in $(elapsed "$t0") s ($(du -sh "$BASE" | cut -f1) base, $(du -sh "$REPO" | cut -f1) repo, $(find "$REPO" -name '*.deb' | wc -l) packages)"
}

make_repo() { # a flat repository: Packages(.gz) and a minimal Release with hashes
	local dir=$1 f
	(
		cd "$dir"
		dpkg-scanpackages -m . /dev/null >Packages 2>/dev/null
		gzip -9c Packages >Packages.gz
		{
			echo "Origin: hactl-lab"
			echo "Label: hactl-lab"
			echo "Suite: lab"
			echo "Codename: lab"
			echo "Date: $(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S UTC')"
			echo "Architectures: $(dpkg --print-architecture) all"
			echo "SHA256:"
			for f in Packages Packages.gz; do
				printf ' %s %s %s\n' "$(sha256sum "$f" | cut -d' ' -f1)" "$(stat -c %s "$f")" "$f"
			done
		} >Release
	)
}

ensure_base() {
	if [ "$(cat "$BASE/.hactl-lab-base" 2>/dev/null)" = "$BASE_VERSION" ] && [ -s "$REPO/Packages.gz" ]; then
		return 0
	fi
	[ -n "$LANE" ] && die "lane $LANE: the cached base in $CACHE is missing or out of date, and a lane cannot build it (no route out): run 'lab.sh image' first"
	[ -d "$HOSTS" ] && [ -n "$(ls -A "$HOSTS")" ] && die "the base needs a rebuild but hosts still use it: run '$0 down' first"
	build_base
}

# Packages added to the repo after a base was cached: fetched in a throwaway overlay of the base
# (its own lists from the mirror, this machine's resolver) and added to the repo, so that adding a
# package does not cost a base rebuild. Hosts bind the repo read-only and refresh their lists
# (apt-get update) before installing.
REPO_EXTRA=(ndisc6 libnginx-mod-stream nftables)
ensure_repo_extra() {
	local p want=() tmp mirror ok=1
	for p in "${REPO_EXTRA[@]}"; do
		[ -n "$(find "$REPO" -maxdepth 1 -name "${p}_*.deb" -print -quit)" ] || want+=("$p")
	done
	[ ${#want[@]} -eq 0 ] && return 0
	[ -n "$LANE" ] && die "lane $LANE: the local repo in $CACHE lacks ${want[*]}, and a lane cannot fetch it (no route out): run 'lab.sh image' first"
	mirror=$(debian_mirror)
	tmp=$CACHE/extra.tmp
	safe_rm "$tmp"
	mkdir -p "$tmp/upper" "$tmp/work" "$tmp/root"
	log "adding ${want[*]} to the local repo from $mirror"
	mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$tmp/upper,workdir=$tmp/work" "$tmp/root"
	printf 'deb %s %s main\n' "$mirror" "$SUITE" >"$tmp/root/etc/apt/sources.list"
	cp /etc/resolv.conf "$tmp/root/etc/resolv.conf"
	mount -t proc proc "$tmp/root/proc"
	{
		in_chroot "$tmp/root" apt-get -qq update &&
			in_chroot "$tmp/root" apt-get -qq install -y --download-only "${want[@]}"
	} >"$CACHE/repo-extra.log" 2>&1 || ok=0
	[ "$ok" = 1 ] && cp -n "$tmp"/root/var/cache/apt/archives/*.deb "$REPO/"
	safe_rm "$tmp"
	[ "$ok" = 1 ] || die "downloading ${want[*]} for the local repo failed; see $CACHE/repo-extra.log"
	make_repo "$REPO"
}

ensure_key() {
	[ -s "$KEY" ] && [ -s "$KEY.pub" ] && return 0
	rm -f "$KEY" "$KEY.pub"
	ssh-keygen -q -t ed25519 -N '' -C hactl-lab -f "$KEY"
}

# Every host's systemd, journald, logind… take inotify instances, all charged to root (the hosts share
# its UID): Debian's default of 128 runs out near 15 hosts and boots then fail with "Too many open
# files". Raise the limits (never lower them); they last until the machine reboots.
ensure_inotify() {
	local n=$1 key want cur
	for key in max_user_instances:$((64 * n + 512)) max_user_watches:$((16384 * n + 524288)); do
		want=${key#*:} key=${key%%:*}
		cur=$(cat "/proc/sys/fs/inotify/$key")
		if [ "$cur" -lt "$want" ]; then
			log "raising fs.inotify.$key from $cur to $want (the hosts' systemd need them)"
			echo "$want" >"/proc/sys/fs/inotify/$key"
		fi
	done
}

ensure_bridge() {
	if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
		ip link add "$BRIDGE" type bridge forward_delay 0 mcast_snooping 0
	fi
	ip link set "$BRIDGE" type bridge forward_delay 0 mcast_snooping 0
	ip addr replace "$GATEWAY/24" dev "$BRIDGE"
	# IPv6 on the bridge: no DAD (the address is usable at once, and a lab never has a duplicate),
	# no router adverts taken from anything on it; the gateway's address survives a link flap.
	lab_ipv6_sysctls "$BRIDGE"
	ip addr replace "$GATEWAY6/64" dev "$BRIDGE" nodad
	ip link set "$BRIDGE" up
}

# lab_ipv6_sysctls IFACE [NETNS]: accept_dad=0, accept_ra=0, keep_addr_on_down=1 (a link taken down and
# up, e.g. by a test, keeps its static IPv6 address as an IPv4 one is kept).
lab_ipv6_sysctls() {
	local dev=$1 ns=${2:-} k
	for k in accept_dad=0 accept_ra=0 keep_addr_on_down=1; do
		if [ -n "$ns" ]; then
			ip netns exec "$ns" sh -c "echo ${k#*=} >/proc/sys/net/ipv6/conf/$dev/${k%%=*}"
		else
			echo "${k#*=}" >"/proc/sys/net/ipv6/conf/$dev/${k%%=*}"
		fi
	done
}

# ---------------------------------------------------------------------------------------------
# One host
# ---------------------------------------------------------------------------------------------

cgroup_dirs() { # the per-host cgroup directories on this machine's layout, one per line
	local h=$1
	if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
		echo "/sys/fs/cgroup/$CG_NAME/$h"
	else
		[ -d /sys/fs/cgroup/unified ] && echo "/sys/fs/cgroup/unified/$CG_NAME/$h"
		[ -d /sys/fs/cgroup/systemd ] && echo "/sys/fs/cgroup/systemd/$CG_NAME/$h"
	fi
	return 0
}

proc_starttime() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }
# A killed nspawn can linger as a zombie (this machine's PID 1 reaps slowly): that is not a live host.
proc_alive() { [ -n "$(awk '$3 != "Z" && $3 != "X" {print $3}' "/proc/$1/stat" 2>/dev/null)" ]; }

# The recorded nspawn PID if that exact process (same start time) is still alive, else nothing.
host_pid() {
	local h=$1 pid start
	[ -r "$HOSTS/$h/pid" ] || return 0
	read -r pid start <"$HOSTS/$h/pid" || return 0
	[ -n "$pid" ] && [ "$(proc_starttime "$pid")" = "$start" ] && proc_alive "$pid" && echo "$pid"
	return 0
}

cgroup_procs() { # every PID in a cgroup tree
	local d
	for d in "$@"; do
		[ -d "$d" ] && find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
	done
	return 0
}

ssh_lab() { # ssh_lab ADDR CMD... — strict host keys against the lab's known_hosts
	ssh -F /dev/null -i "$KEY" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes \
		-o UserKnownHostsFile="$KNOWN" -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=3 \
		-o LogLevel=ERROR "root@$1" "${@:2}" </dev/null
}

# Stops one host and removes everything it left: process tree, cgroups, mounts, netns, veth, files.
stop_host() {
	local h=$1 ns pid start="" i t d dirs pids=()
	ns=$(ns_of "$h")
	mapfile -t dirs < <(cgroup_dirs "$h")
	pid=$(host_pid "$h")
	[ -n "$pid" ] && start=$(proc_starttime "$pid")
	if [ -n "$pid" ]; then
		# One SIGTERM = clean poweroff of the container; a second one would kill it at once.
		kill -TERM "$pid" 2>/dev/null || true
		t=$((STOP_TIMEOUT * 10))
		for ((i = 0; i < t; i++)); do
			proc_alive "$pid" || break
			sleep 0.1
		done
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
	# Whatever survived (nspawn killed earlier, container processes orphaned) is in the host's cgroup.
	for ((i = 0; i < 50; i++)); do
		mapfile -t pids < <(cgroup_procs "${dirs[@]}")
		[ ${#pids[@]} -eq 0 ] && break
		kill -KILL "${pids[@]}" 2>/dev/null || true
		sleep 0.1
	done
	[ ${#pids[@]} -eq 0 ] || die "$h: processes ${pids[*]} survive SIGKILL"
	# The dead nspawn is a zombie until this machine's PID 1 reaps it (~1 s here): wait, so that
	# `down` really leaves no process behind.
	if [ -n "$pid" ]; then
		for ((i = 0; i < 100; i++)); do
			[ "$(proc_starttime "$pid")" = "$start" ] || break
			sleep 0.1
		done
	fi
	for d in "${dirs[@]}"; do
		[ -d "$d" ] && { find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; }
		[ -d "$d" ] && die "$h: cannot remove cgroup $d"
	done
	[ -d "$HOSTS/$h" ] && umount_under "$HOSTS/$h"
	ip netns delete "$ns" 2>/dev/null || true
	[ -e "/run/netns/$ns" ] && { umount "/run/netns/$ns" 2>/dev/null || true; rm -f "/run/netns/$ns"; }
	ip link delete "$(veth_of "${h#lab}")" 2>/dev/null || true
	rm -rf "/run/systemd/nspawn/propagate/$ns" "/run/systemd/nspawn/unix-export/$ns"
	[ -d "$HOSTS/$h" ] && safe_rm "$HOSTS/$h"
	return 0
}

# Prepares and boots host i; does not wait for it. Runs in parallel with the other hosts.
start_host() {
	local i=$1 h=lab$1 ns addr addr6 dir root pid mac d
	ns=$(ns_of "$h")
	addr=$(addr_of "$i")
	addr6=$(addr6_of "$i")
	dir=$HOSTS/$h
	root=$dir/root
	stop_host "$h" # stale remains of a killed lab: netns, mounts, cgroups, old upper dir
	mkdir -p "$dir/upper" "$dir/work" "$root"

	# Network: own netns, veth into the bridge, eth0 inside, no default route. A fixed MAC keeps the
	# other hosts' ARP caches right when a host is recreated.
	mac=$(printf '02:48:41:00:00:%02x' "$i")
	# IPv6: ::1i/64 with nodad, the netns's defaults set first so eth0 is born with them; the bridge
	# side of the veth gets no IPv6 of its own.
	ip netns add "$ns"
	lab_ipv6_sysctls default "$ns"
	ip link add "$(veth_of "$i")" type veth peer name eth0 netns "$ns"
	echo 1 >"/proc/sys/net/ipv6/conf/$(veth_of "$i")/disable_ipv6"
	ip link set "$(veth_of "$i")" master "$BRIDGE" up
	ip -n "$ns" link set lo up
	ip -n "$ns" link set eth0 address "$mac"
	lab_ipv6_sysctls eth0 "$ns"
	ip -n "$ns" addr add "$addr/24" dev eth0
	ip -n "$ns" addr add "$addr6/64" dev eth0 nodad
	ip -n "$ns" link set eth0 up

	mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$dir/upper,workdir=$dir/work" "$root"

	# Identity: own host key, machine-id, name; the lab key for root and ops; sshd on this address only.
	ssh-keygen -q -t ed25519 -N '' -C "root@$h" -f "$root/etc/ssh/ssh_host_ed25519_key"
	tr -d - </proc/sys/kernel/random/uuid >"$root/etc/machine-id"
	echo "$h" >"$root/etc/hostname"
	printf '127.0.0.1\tlocalhost\n%s\t%s\n%s\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$addr" "$h" "$addr6" "$h" >"$root/etc/hosts"
	printf 'ListenAddress %s\nListenAddress %s\n' "$addr" "$addr6" >"$root/etc/ssh/sshd_config.d/hactl-lab-listen.conf"
	# dpkg fsyncs every file it unpacks, for power-loss safety; a lab host's overlay is thrown away
	# at every start anyway, so that only costs time (~3 ms a fsync on this machine's disk,
	# thousands of files in a cold apply's package install, three hosts on one disk).
	mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
	echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/hactl-lab-unsafe-io"
	install -d -m 0700 "$root/root/.ssh"
	install -m 0600 "$KEY.pub" "$root/root/.ssh/authorized_keys"
	install -d -m 0700 "$root/home/ops/.ssh"
	install -m 0600 "$KEY.pub" "$root/home/ops/.ssh/authorized_keys"
	chown -R --reference="$root/home/ops" "$root/home/ops/.ssh"

	# With --keep-unit nspawn builds its payload/supervisor cgroups under the caller's: give every host
	# its own, so `down` can find and kill exactly what belongs to it.
	while read -r d; do mkdir -p "$d"; done < <(cgroup_dirs "$h")

	(
		while read -r d; do echo "$BASHPID" >"$d/cgroup.procs"; done < <(cgroup_dirs "$h")
		# A long-lived child must not hold our lock or the caller's pipes (a Go test waiting on
		# stdout would hang until the lab is down).
		for fd in /proc/"$BASHPID"/fd/*; do
			fd=${fd##*/}
			[ "$fd" -gt 2 ] && eval "exec $fd>&-"
		done
		export SYSTEMD_NSPAWN_API_VFS_WRITABLE=network
		# Not a process-group leader here, so setsid does not fork: $! below is nspawn's PID.
		exec setsid systemd-nspawn --boot --quiet --directory="$root" --machine="$ns" \
			--register=no --keep-unit --network-namespace-path="/run/netns/$ns" \
			--capability=CAP_NET_ADMIN --bind-ro="$REPO:/srv/labrepo" \
			--resolv-conf=off --timezone=off --link-journal=no --console=read-only \
			</dev/null >"$dir/console.log" 2>&1
	) &
	pid=$!
	# Record PID with its start time, so a recycled PID is never mistaken for the host.
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd-nspawn ] && break
		sleep 0.05
	done
	echo "$pid $(proc_starttime "$pid")" >"$dir/pid"
}

# Waits until systemd reports running/degraded over SSH, bounded; on timeout names the host and shows
# its console. Polling sshd's port is a cheap fork-free probe (0.1 s steps); then one ssh with
# `is-system-running --wait` replaces dozens of ssh handshakes per host, which matters at 30+ hosts.
wait_host() {
	local h=lab$1 addr state="" deadline left
	addr=$(addr_of "$1")
	deadline=$(($(date +%s) + BOOT_TIMEOUT))
	while left=$((deadline - $(date +%s))) && [ "$left" -gt 0 ]; do
		if [ -z "$(host_pid "$h")" ]; then
			echo "lab: error: $h: systemd-nspawn exited during boot; last lines of $HOSTS/$h/console.log:" >&2
			tail -n 20 "$HOSTS/$h/console.log" >&2 2>/dev/null
			return 1
		fi
		if ! (exec 3<>"/dev/tcp/$addr/22") 2>/dev/null; then
			sleep 0.1
			continue
		fi
		state=$(ssh_lab "$addr" timeout "$left" systemctl is-system-running --wait 2>/dev/null) || true
		case $state in
		running) return 0 ;;
		degraded)
			log "warning: $h is degraded: $(ssh_lab "$addr" systemctl --failed --no-legend --plain 2>/dev/null | awk '{print $1}' | xargs)"
			return 0
			;;
		esac
		sleep 0.1
	done
	{
		echo "lab: error: $h ($addr) not ready after ${BOOT_TIMEOUT}s (systemd state: '${state:-no ssh}'); last lines of $HOSTS/$h/console.log:"
		tail -n 20 "$HOSTS/$h/console.log" 2>/dev/null
	} >&2
	return 1
}

# ---------------------------------------------------------------------------------------------
# Lab-wide state files
# ---------------------------------------------------------------------------------------------

running_hosts() { # names of hosts with a live nspawn, sorted by index
	local d h
	for d in "$HOSTS"/lab*; do
		h=${d##*/}
		[ -n "$(host_pid "$h")" ] && echo "${h#lab}"
	done | sort -n
	return 0
}

write_known_hosts() { # from each host's own key file, never from a first connection; both addresses
	local i key tmp=$KNOWN.tmp
	: >"$tmp"
	for i in "$@"; do
		key=$(cut -d' ' -f1,2 "$HOSTS/lab$i/upper/etc/ssh/ssh_host_ed25519_key.pub")
		printf '%s %s\n%s %s\n' "$(addr_of "$i")" "$key" "$(addr6_of "$i")" "$key" >>"$tmp"
	done
	mv "$tmp" "$KNOWN"
}

# The template for hosts lab1..labN: its header comment replaced, its paths under $LAB, and its
# first host block repeated with each host's name, address and VIP (the other host blocks are
# that same block for hosts 2 and 3).
render_inventory() {
	local n=$1
	awk -v n="$n" -v lab="$LAB" -v def=/var/lib/hactl-lab -v net="$NET" -v a0="$ADDR_BASE" -v v0="$VIP_BASE" '
		function repl(s, from, to,   k, out) {
			out = ""
			while ((k = index(s, from)) > 0) {
				out = out substr(s, 1, k - 1) to
				s = substr(s, k + length(from))
			}
			return out s
		}
		function block(i,   k, line) {
			for (k = 1; k <= nb; k++) {
				line = repl(b[k], "\"lab1\"", "\"lab" i "\"")
				if (line ~ /^ *address *=/) sub(/"[^"]*"/, "\"" net "." (a0 + i) "\"", line)
				if (line ~ /^ *vip *=/) sub(/"[^"\/]*\//, "\"" net "." (v0 + i) "/", line)
				print line
			}
		}
		!started && /^#/ { next }
		!started { started = 1; print "# generated by e2e/lab/lab.sh from inventory/lab.hcl for " n " hosts" }
		/^  host "/ { inhost = 1; hosts++ }
		inhost {
			if (hosts == 1) b[++nb] = $0
			if ($0 ~ /^  }/) {
				inhost = 0
				if (hosts == 1) for (i = 1; i <= n; i++) block(i)
			}
			next
		}
		{ print repl($0, def, lab) }
	' "$TEMPLATE"
}

write_inventory() {
	local tmp=$INVENTORY.tmp
	render_inventory "$1" >"$tmp"
	mv "$tmp" "$INVENTORY"
}

# The IPv6 inventories next to lab.hcl, derived from its rendering (so the cluster settings stay
# the template's): lab-dualstack.hcl adds gateway6 and each host's vip6 ::20i; lab-ipv6.hcl has
# gateway6 instead of gateway and IPv6 addresses (::1i) and VIPs only.
write_ipv6_inventories() {
	local n=$1 kind out
	for kind in dualstack ipv6; do
		out=$INVENTORY_DUAL
		[ "$kind" = ipv6 ] && out=$INVENTORY_V6
		render_inventory "$n" | awk -v kind="$kind" -v net6="$NET6" -v gw6="$GATEWAY6" '
			NR == 1 && /^# generated/ { print $0 " (" kind ")"; next }
			/^  host "lab[0-9]+"/ { i = $2; gsub(/[^0-9]/, "", i) }
			/^ *gateway *=/ {
				if (kind == "dualstack") print
				print "  gateway6               = \"" gw6 "\""
				next
			}
			/^ *address *=/ && kind == "ipv6" { sub(/"[^"]*"/, "\"" net6 "::1" i "\"") }
			/^ *vip *=/ {
				if (kind == "ipv6") { sub(/"[^"]*"/, "\"" net6 "::20" i "/64\""); print; next }
				print
				print "    vip6    = \"" net6 "::20" i "/64\""
				next
			}
			{ print }
		' >"$out.tmp"
		mv "$out.tmp" "$out"
	done
}

lock() {
	mkdir -p "$LAB"
	exec {LOCKFD}>"$LAB/.lock"
	flock -w 900 "$LOCKFD" || die "another lab.sh holds $LAB/.lock"
}

# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------

cmd_up() {
	local n=${1:-3} t0 i d pid pids=() failed=0 start=() stop=() running all
	if ! [[ $n =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt "$MAX_HOSTS" ]; then
		die "N must be 1..$MAX_HOSTS, got '$n'"
	fi
	t0=$(now)
	ensure_tools
	lock
	check_subnet_free
	check_subnet6_free
	warn_forward_drop
	ensure_base
	ensure_repo_extra
	ensure_key
	mkdir -p "$HOSTS"
	ensure_inotify "$n"
	ensure_bridge

	# Resize policy: keep running hosts 1..N, start the missing ones, stop the ones above N.
	running=" $(running_hosts | xargs) "
	for d in "$HOSTS"/lab*; do
		i=${d##*/lab}
		if [[ $i =~ ^[0-9]+$ ]] && [ "$i" -gt "$n" ]; then
			stop_host "lab$i" &
			pids+=($!)
			stop+=("$i")
		fi
	done
	for ((i = 1; i <= n; i++)); do
		[[ $running == *" $i "* ]] || start+=("$i")
	done
	for i in "${start[@]}"; do
		start_host "$i" &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
	[ "$failed" = 0 ] || die "starting or stopping some hosts failed (see above)"
	mapfile -t all < <(seq 1 "$n")
	write_known_hosts "${all[@]}"

	pids=()
	for ((i = 1; i <= n; i++)); do
		wait_host "$i" &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
	[ "$failed" = 0 ] || die "some hosts did not boot; the lab is left as is for inspection ('$0 down' cleans up)"
	write_inventory "$n"
	write_ipv6_inventories "$n"
	apps_up "${2:-0}"
	if [ ${#start[@]} -eq 0 ] && [ ${#stop[@]} -eq 0 ]; then
		log "lab of $n hosts already up ($(elapsed "$t0") s); inventory: $INVENTORY"
	else
		log "lab of $n hosts up in $(elapsed "$t0") s (started: ${start[*]:-none}; stopped: ${stop[*]:-none}); inventory: $INVENTORY"
	fi
}

# image: what `up` builds before it boots anything (host tools, base, repo, client key), and
# nothing else; `make test` runs it beside the unit tests so that a cold base build (~85 s) does
# not add to the e2e tests' time. A no-op when the cache is current.
cmd_image() {
	local t0
	t0=$(now)
	ensure_tools
	lock
	if [ "$(cat "$BASE/.hactl-lab-base" 2>/dev/null)" != "$BASE_VERSION" ] && [ -d "$HOSTS" ] && [ -n "$(ls -A "$HOSTS")" ]; then
		log "the base needs a rebuild but hosts still use it: left to the next up after a down"
		return 0
	fi
	ensure_base
	ensure_repo_extra
	ensure_key
	log "base and repo ready ($(elapsed "$t0") s)"
}

# Everything of the lab this machine still has, whether or not its host directory survived.
all_host_names() {
	{
		for d in "$HOSTS"/lab*; do echo "${d##*/}"; done
		ip netns list 2>/dev/null | awk '{print $1}' | sed -n "s/^$NS_PREFIX\(lab[0-9][0-9]*\)\$/\1/p"
		ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed -n 's/^hactl-lab\([0-9]*\)@.*/lab\1/p'
		for d in "/sys/fs/cgroup/$CG_NAME"/lab* /sys/fs/cgroup/*/"$CG_NAME"/lab*; do echo "${d##*/}"; done
	} | sort -u
}

cmd_down() {
	local t0 pids=() failed=0 h d
	t0=$(now)
	lock
	for h in $(all_host_names); do
		stop_host "$h" &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
	apps_down
	ip link delete "$BRIDGE" 2>/dev/null || true
	for d in "/sys/fs/cgroup/$CG_NAME" /sys/fs/cgroup/*/"$CG_NAME"; do rmdir "$d" 2>/dev/null || true; done
	# handed-on: labkit.Reuse's note that a passing test left this lab for the next one.
	rm -f "$INVENTORY" "$INVENTORY_DUAL" "$INVENTORY_V6" "$KNOWN" "$LAB/handed-on"
	[ "$failed" = 0 ] || die "some hosts could not be cleaned up (see above)"
	log "lab down in $(elapsed "$t0") s"
}

cmd_status() {
	local d h i addr pid state any=0
	if ip link show "$BRIDGE" >/dev/null 2>&1; then
		echo "bridge $BRIDGE: $(ip -4 -o addr show dev "$BRIDGE" | awk '{print $4}') up"
	else
		echo "bridge $BRIDGE: absent"
	fi
	printf '%-6s %-13s %-8s %-9s %s\n' HOST ADDRESS PID NSPAWN SSH/SYSTEMD
	for i in $(for d in "$HOSTS"/lab*; do echo "${d##*/lab}"; done | sort -n); do
		any=1
		h=lab$i
		addr=$(addr_of "$i")
		pid=$(host_pid "$h")
		if [ -n "$pid" ]; then
			state=$(ssh_lab "$addr" systemctl is-system-running 2>/dev/null) || state=${state:-unreachable}
			printf '%-6s %-13s %-8s %-9s %s\n' "$h" "$addr" "$pid" running "$state"
		else
			printf '%-6s %-13s %-8s %-9s %s\n' "$h" "$addr" - stopped -
		fi
	done
	[ "$any" = 1 ] || echo "(no hosts)"
	[ -f "$INVENTORY" ] && echo "inventory: $INVENTORY"
	return 0
}

cmd_inventory() {
	local n=${1:-3}
	if ! [[ $n =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt "$MAX_HOSTS" ]; then
		die "N must be 1..$MAX_HOSTS, got '$n'"
	fi
	render_inventory "$n"
}

cmd_purge() {
	if [ -z "$LANE" ]; then cmd_down_all; else cmd_down; fi
	umount_under "$LAB"
	rm -rf --one-file-system "$LAB"
	log "purged $LAB"
}

# reboot labN: `systemctl reboot` inside makes nspawn exit (nothing boots the container again), so
# the host is booted again here on the same overlay, netns and identity (its files survive, /run and
# its processes do not), then waited for like `up` does.
cmd_reboot() {
	local h=${1:-} i pid t0 t d dir
	[[ $h =~ ^lab([0-9]+)$ ]] || die "usage: $0 reboot labN"
	i=${BASH_REMATCH[1]}
	dir=$HOSTS/$h
	t0=$(now)
	lock
	pid=$(host_pid "$h")
	[ -n "$pid" ] || die "$h is not running"
	ssh_lab "$(addr_of "$i")" systemctl reboot || true
	for ((t = 0; t < STOP_TIMEOUT * 10; t++)); do
		proc_alive "$pid" || break
		sleep 0.1
	done
	proc_alive "$pid" && die "$h: systemd-nspawn still runs ${STOP_TIMEOUT}s after systemctl reboot"
	log "$h: powered off after $(elapsed "$t0") s; booting it again"
	(
		while read -r d; do mkdir -p "$d" && echo "$BASHPID" >"$d/cgroup.procs"; done < <(cgroup_dirs "$h")
		for fd in /proc/"$BASHPID"/fd/*; do
			fd=${fd##*/}
			[ "$fd" -gt 2 ] && eval "exec $fd>&-"
		done
		SYSTEMD_NSPAWN_API_VFS_WRITABLE=network exec setsid systemd-nspawn --boot --quiet --directory="$dir/root" --machine="$(ns_of "$h")" \
			--register=no --keep-unit --network-namespace-path="/run/netns/$(ns_of "$h")" \
			--capability=CAP_NET_ADMIN --bind-ro="$REPO:/srv/labrepo" \
			--resolv-conf=off --timezone=off --link-journal=no --console=read-only \
			</dev/null >>"$dir/console.log" 2>&1
	) &
	pid=$!
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd-nspawn ] && break
		sleep 0.05
	done
	echo "$pid $(proc_starttime "$pid")" >"$dir/pid"
	wait_host "$i" || die "$h did not come back after the reboot"
	log "$h rebooted in $(elapsed "$t0") s"
}

# ---------------------------------------------------------------------------------------------
# App servers: the upstreams of the balancers' sites (issue 20). Each is a network namespace on
# the bridge at $NET.(20+i) (inventory/sites.hcl's 198.18.0.21/.22) running e2e/lab/appserver.py
# with this machine's python3: HTTP on 8080 and TCP on 5432, each answer naming the server. No
# container: an upstream needs an address and a responder, not systemd or SSH.
# ---------------------------------------------------------------------------------------------

APP_BASE=20
MAX_APPS=9
APP_PY=$(realpath -m "$(dirname "${BASH_SOURCE[0]}")/appserver.py")
app_addr_of() { echo "$NET.$((APP_BASE + $1))"; }
app_veth_of() { echo "hactl-app$1"; }
app_pid() { # the responder's PID if it runs (recorded with its start time)
	local f=$HOSTS/app$1/pid pid start
	[ -r "$f" ] || return 0
	read -r pid start <"$f" || return 0
	[ -n "$pid" ] && [ "$(proc_starttime "$pid")" = "$start" ] && proc_alive "$pid" && echo "$pid"
	return 0
}

app_run() { # starts app i's responder in its namespace, detached, fds above 2 closed
	local i=$1 dir=$HOSTS/app$1 pid
	[ -n "$(app_pid "$i")" ] && return 0
	(
		for fd in /proc/"$BASHPID"/fd/*; do
			fd=${fd##*/}
			[ "$fd" -gt 2 ] && eval "exec $fd>&-"
		done
		exec setsid ip netns exec "$(ns_of "app$i")" "${LAB_PYTHON:-/usr/bin/python3}" "$APP_PY" "app$i" "$(app_addr_of "$i")" 8080 5432 </dev/null >>"$dir/app.log" 2>&1
	) &
	pid=$!
	echo "$pid $(proc_starttime "$pid")" >"$dir/pid"
	for _ in $(seq 50); do
		(exec 3<>"/dev/tcp/$(app_addr_of "$i")/8080") 2>/dev/null && return 0
		sleep 0.1
	done
	die "app$i: the responder does not answer on $(app_addr_of "$i"):8080; see $dir/app.log"
}

app_halt() { # stops app i's responder; its namespace and address stay
	local pid i
	pid=$(app_pid "$1")
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
	for i in $(seq 50); do
		[ -z "$(app_pid "$1")" ] && return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

app_start() {
	local i=$1 h=app$1 ns
	ns=$(ns_of "$h")
	mkdir -p "$HOSTS/$h"
	if ! [ -e "/run/netns/$ns" ]; then
		ip netns add "$ns"
		ip link add "$(app_veth_of "$i")" type veth peer name eth0 netns "$ns"
		echo 1 >"/proc/sys/net/ipv6/conf/$(app_veth_of "$i")/disable_ipv6"
		ip link set "$(app_veth_of "$i")" master "$BRIDGE" up
		ip -n "$ns" link set lo up
		ip -n "$ns" addr add "$(app_addr_of "$i")/24" dev eth0
		ip -n "$ns" link set eth0 up
	fi
	app_run "$i"
}

app_stop() {
	local h=app$1 ns
	ns=$(ns_of "app$1")
	app_halt "$1"
	ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
	ip netns delete "$ns" 2>/dev/null || true
	ip link delete "$(app_veth_of "$1")" 2>/dev/null || true
	rm -rf "${HOSTS:?}/$h"
}

apps_up() { # app1..appM run, the others are gone
	local m=$1 i d
	if ! [[ $m =~ ^[0-9]+$ ]] || [ "$m" -gt "$MAX_APPS" ]; then die "APPS must be 0..$MAX_APPS, got '$m'"; fi
	[ "$m" -gt 0 ] && [ "$(running_hosts | tail -n 1)" -gt "$APP_BASE" ] 2>/dev/null && die "app servers use $(app_addr_of 1)…: at most $APP_BASE balancers with APPS"
	ip link show "$BRIDGE" >/dev/null 2>&1 || die "no lab bridge: run '$0 up' first"
	# The responder runs on this machine's python3, which a bare Debian 12 lacks.
	if [ "$m" -gt 0 ] && [ -z "${LAB_PYTHON:-}" ]; then
		install_missing "app server tools" python3:python3 || die "app servers need python3 (see above)"
	fi
	for d in "$HOSTS"/app* "/run/netns/${NS_PREFIX}"app*; do
		i=${d##*/"$NS_PREFIX"app}
		i=${i##*/app}
		[[ $i =~ ^[0-9]+$ ]] && [ "$i" -gt "$m" ] && app_stop "$i"
	done
	for ((i = 1; i <= m; i++)); do app_start "$i"; done
	[ "$m" -gt 0 ] && log "app servers app1..app$m at $(app_addr_of 1)… (HTTP :8080, TCP :5432)"
	return 0
}

apps_down() {
	local d i
	for d in "$HOSTS"/app* "/run/netns/${NS_PREFIX}"app*; do
		i=${d##*/"$NS_PREFIX"app}
		i=${i##*/app}
		[[ $i =~ ^[0-9]+$ ]] && app_stop "$i"
	done
	return 0
}

cmd_apps() {
	lock
	apps_up "${1:-0}"
}

cmd_app() {
	local what=${1:-} h=${2:-}
	[[ $h =~ ^app([0-9]+)$ ]] || die "usage: $0 app stop|start appI"
	[ -e "/run/netns/$(ns_of "$h")" ] || die "$h does not exist (lab.sh apps M)"
	case $what in
	stop) app_halt "${BASH_REMATCH[1]}" ;;
	start) app_run "${BASH_REMATCH[1]}" ;;
	*) die "usage: $0 app stop|start appI" ;;
	esac
}

# ---------------------------------------------------------------------------------------------
# Lanes (see LANE at the top)
# ---------------------------------------------------------------------------------------------

# In a lane, every command that touches the lab runs inside the lane's network namespace, which is
# created here when missing (loopback only: no route to anything but the lane's own bridge) and
# entered with nsenter — the network namespace only, so mounts, cgroups and /run/netns stay this
# machine's and `down` from anywhere finds everything.
enter_lane() {
	[ -n "$LANE" ] || return 0
	ensure_lane_netns "$LANE"
	[ "$(stat -L -c %i "/run/netns/$LANE_NS")" = "$(stat -L -c %i /proc/self/ns/net)" ] && return 0
	exec nsenter --net="/run/netns/$LANE_NS" -- bash "${BASH_SOURCE[0]}" "$@"
}

ensure_lane_netns() {
	local ns=hactl-lane$1
	[ -e "/run/netns/$ns" ] && return 0
	ip netns add "$ns" 2>/dev/null || [ -e "/run/netns/$ns" ] || die "cannot create network namespace $ns"
	ip -n "$ns" link set lo up
}

# lane-exec N CMD…: runs CMD in lane N of the lab at HACTL_LAB_DIR: inside the network namespace
# hactl-laneN, with HACTL_LAB_LANE=N, HACTL_LAB_DIR=<lab>/lanes/N and HACTL_LAB_CACHE=<lab>/cache
# (the default lab's base and repo, which must be current: `lab.sh image` first). labkit and
# lab.sh then act on that lane's lab only; `lab.sh down-all` takes every lane down.
cmd_lane_exec() {
	local n=${1:-}
	[[ $n =~ ^[2-9]$ ]] || die "usage: $0 lane-exec N CMD... (N 2..9; lane 1 is the default lab)"
	shift
	[ $# -gt 0 ] || die "usage: $0 lane-exec N CMD..."
	[ -z "$LANE" ] || die "lane-exec: already in lane $LANE"
	ensure_tools # outside the lane: it may need apt's network
	ensure_lane_netns "$n"
	mkdir -p "$LAB/lanes/$n"
	HACTL_LAB_LANE=$n HACTL_LAB_DIR=$LAB/lanes/$n HACTL_LAB_CACHE=$CACHE exec nsenter --net="/run/netns/hactl-lane$n" -- "$@"
}

# lane-down N: lane N's lab down and its network namespace gone (what e2e/lanes.sh does to each
# lane it ran). `down` alone, in a lane, takes only that lane's lab down: a test in one lane must
# never stop another's.
cmd_lane_down() {
	local n=${1:-}
	[[ $n =~ ^[2-9]$ ]] || die "usage: $0 lane-down N (N 2..9)"
	[ -z "$LANE" ] || die "lane-down: run it outside the lanes"
	if [ -d "$LAB/lanes/$n" ]; then
		HACTL_LAB_LANE=$n HACTL_LAB_DIR=$LAB/lanes/$n HACTL_LAB_CACHE=$CACHE bash "${BASH_SOURCE[0]}" down || return 1
	fi
	[ -e "/run/netns/hactl-lane$n" ] && ip netns delete "hactl-lane$n"
	return 0
}

# down-all: every lane down (lane-down), then the default lab's down: what `make lab-down` runs.
cmd_down_all() {
	local n failed=0
	[ -z "$LANE" ] || die "down-all: run it outside the lanes"
	for n in 2 3 4 5 6 7 8 9; do
		{ [ -d "$LAB/lanes/$n" ] || [ -e "/run/netns/hactl-lane$n" ]; } || continue
		cmd_lane_down "$n" || failed=1
	done
	cmd_down
	[ "$failed" = 0 ] || die "some lanes could not be taken down (see above)"
}

main() {
	local cmd=${1:-}
	case $cmd in
	up | down | purge | image | status | reboot | apps | app)
		require_root_linux "$@"
		enter_lane "$@"
		;;
	down-all) require_root_linux "$@" && cmd=down_all ;;
	lane-down) require_root_linux "$@" && cmd=lane_down ;;
	lane-exec) require_root_linux "$@" && cmd=lane_exec ;;
	inventory) ;;
	test-deps) cmd=test_deps ;;
	*)
		echo "usage: $0 up [N] [APPS] | apps M | app stop|start appI | down | down-all | status | purge | image | inventory [N] | test-deps | reboot labN | lane-exec N CMD... | lane-down N" >&2
		exit 2
		;;
	esac
	shift
	"cmd_$cmd" "$@"
}

main "$@"
