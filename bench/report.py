#!/usr/bin/env python3
"""Turn bench/out/results.csv into a table (stdout) and BENCHMARKS.md.

usage: python3 bench/report.py OUT_DIR REPO_ROOT
The hand-written analysis in bench/analysis.md is appended verbatim.
"""
import csv
import os
import statistics
import subprocess
import sys


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:  # noqa: BLE001 - a missing tool only blanks one line
        return ""


def main():
    out, root = sys.argv[1], sys.argv[2]
    rows = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
    by = {}
    for r in rows:
        by.setdefault((r["tool"], r["scenario"], int(r["hosts"])), []).append(r)

    def walls(tool, scen, n=3):
        return [float(r["wall_s"]) for r in by.get((tool, scen, n), [])]

    def rss(tool, scen, n=3):
        return max((int(r["rss_kb"]) for r in by.get((tool, scen, n), [])), default=0)

    def summ(ws):
        if not ws:
            return "–"
        if len(ws) == 1:
            return f"{ws[0]:.2f} s"
        return f"{statistics.median(ws):.2f} s (min {min(ws):.2f}, max {max(ws):.2f}, n={len(ws)})"

    lines = []
    p = lines.append
    p("| 3 lab hosts | hactl | Ansible | Ansible / hactl (median) |")
    p("|---|---|---|---|")
    for scen, label in (("cold", "cold apply (fresh lab)"), ("nochange", "no-change re-apply"), ("onefile", "one file changed per host")):
        h, a = walls("hactl", scen), walls("ansible", scen)
        ratio = f"{statistics.median(a) / statistics.median(h):.1f}×" if h and a else "–"
        p(f"| {label} | {summ(h)} | {summ(a)} | {ratio} |")
    pre = walls("ansible", "prereq")
    if pre:
        p(f"| Ansible's prerequisite: python3 + python3-apt on the hosts (not in Ansible's cold figure) | – | {pre[0]:.2f} s | |")
    p(f"| peak RSS (largest process) | {rss('hactl', 'nochange') / 1024:.1f} MiB | {rss('ansible', 'nochange') / 1024:.1f} MiB | |")
    p("")
    cold = by.get(("hactl", "cold", 3), [])
    if cold:
        w, pk = float(cold[0]["wall_s"]), float(cold[0]["pkg_s"])
        p(f"Cold-apply overhead beyond the package manager (3 hosts): {w:.2f} s total − {pk:.2f} s "
          f"for the `packages` step (apt-get update + install, longest host) = **{w - pk:.2f} s**.")
        p("")
    eq = os.path.join(out, "equivalence")
    if os.path.exists(eq):
        p(f"Equivalence check: `hactl apply` right after Ansible's cold apply changed "
          f"{open(eq).read().strip()} item(s) (0 = the same end state).")
        p("")
    ns = sorted({k[2] for k in by if k[1].startswith("scale")})
    if ns:
        p("| hactl, N hosts | cold apply | of which packages | overhead | no-change (--parallel N) | no-change (default --parallel 10) | peak RSS |")
        p("|---|---|---|---|---|---|---|")
        for n in ns:
            c = by.get(("hactl", "scale-cold", n), [])
            cw = float(c[0]["wall_s"]) if c else 0
            cp = float(c[0]["pkg_s"]) if c else 0
            r = max(rss("hactl", s, n) for s in ("scale-cold", "scale-nochange", "scale-nochange-p10"))
            p(f"| {n} | {cw:.2f} s | {cp:.2f} s | {cw - cp:.2f} s | {summ(walls('hactl', 'scale-nochange', n))} | "
              f"{summ(walls('hactl', 'scale-nochange-p10', n))} | {r / 1024:.1f} MiB |")
        p("")
    cpuf = os.path.join(out, "cpu.txt")
    if os.path.exists(cpuf):
        groups = {}
        for line in open(cpuf):
            f = line.split()
            if len(f) != 4:
                continue
            name = f[0].rstrip("0123456789").rstrip("-")
            groups.setdefault(name, []).append((float(f[1]), float(f[2]) + float(f[3])))
        parts = []
        for name in sorted(groups):
            if "nochange" not in name:
                continue
            w = statistics.median(x[0] for x in groups[name])
            c = statistics.median(x[1] for x in groups[name])
            parts.append(f"`{name}` {c:.2f} s CPU in {w:.2f} s wall")
        if parts:
            p("CPU time (user + system, medians) of the no-change runs: " + "; ".join(parts) + ".")
            p("")
    table = "\n".join(lines)
    print(table)

    commit = sh(f"git -C {root} rev-parse --short HEAD")
    dirty = " (+ uncommitted changes)" if sh(f"git -C {root} status --porcelain --untracked-files=no") else ""
    lab = os.environ.get("HACTL_LAB_DIR", "/var/lib/hactl-lab")
    ssh = f"ssh -i {lab}/id_ed25519 -o UserKnownHostsFile={lab}/known_hosts"
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    mem = sh("free -g | awk '/Mem:/ {print $2}'")
    osname = sh(". /etc/os-release; echo $PRETTY_NAME")
    debs = " ".join(sorted(f for f in os.listdir(os.path.join(lab, "cache", "repo"))
                           if f.startswith(("keepalived_", "nginx_")))) if os.path.isdir(os.path.join(lab, "cache", "repo")) else "?"
    version = sh(root + "/bin/hactl --version")
    ansible_v = sh("ansible-playbook --version | head -n1")
    doc = f"""# Benchmarks: hactl vs Ansible on the container-VM lab

Generated by `make bench` (`bash bench/run.sh all`, then `bench/report.py`); raw figures in
`bench/out/results.csv`, every run's log in `bench/out/log/` (not committed).

## Results

{table}
## Machine and versions

| | |
|---|---|
| machine | {sh('nproc')} cores ({cpu}), {mem} GiB RAM, kernel {sh('uname -r')}, {osname} |
| lab | systemd-nspawn container VMs on the same machine (e2e/README.md); the machine is shared with other work, so load varies between runs |
| Go | {sh('go version')} |
| hactl | commit {commit}{dirty}, `{version}` |
| ansible-core | {ansible_v}, {sh("python3 --version")} on the controller |
| keepalived / nginx on the hosts | Debian 12 packages from the lab repo: {debs} |

## How to rerun

```sh
make bench                       # = bash bench/run.sh all  (as root; several minutes)
RUNS=9 bash bench/run.sh steady  # only the alternating no-change / one-file runs
SCALE_NS="3 10 30" bash bench/run.sh scale
bash bench/run.sh report         # table + this file from bench/out/results.csv
```

What each session does (each under `flock /run/hactl-lab.session.lock`, each from `lab.sh down; lab.sh up N`):

- **cold**: fresh 3-host lab → `bin/hactl apply -i {lab}/lab.hcl` (timed). Fresh lab again →
  python3 + python3-apt on every host (`{ssh} root@HOST 'apt-get update && apt-get install -y python3 python3-apt'`,
  then the apt lists emptied and dated back as on a fresh host, so Ansible pays its own `apt-get update`; timed
  separately: Ansible needs them, hactl does not) → `ansible-playbook -i bench/out/ansible-hosts.yml
  -e render_dir=bench/out/render/base bench/ansible/site.yml` (timed) → `hactl apply` once more, which must change nothing.
- **steady**: fresh lab, python3, `hactl apply`, one warm-up Ansible run (opens its ControlPersist masters), then
  RUNS× alternating `hactl apply` / `ansible-playbook` with nothing to change, then RUNS× alternating runs that each
  change one file per host: hactl applies `health_check.interval = 3` (bench/out/lab-interval3.hcl), Ansible copies the
  `interval 2` render back; each run rewrites keepalived.conf and reloads keepalived on every host.
- **scale**: for N in 3 10 30: fresh lab of N → `hactl apply --parallel N` (cold) → RUNS× no-change with
  `--parallel N` and with the default `--parallel 10`.
- Wall time is the shell's clock around the command; peak RSS is `/usr/bin/time`'s maximum resident set of the
  largest process (for Ansible: the biggest of its forks). The package time is the `packages` step's elapsed time
  that hactl prints per host on stderr (the longest host; hosts install in parallel).

Ansible's setup (`bench/ansible/`): ansible-core from Debian, `pipelining = True`, `ControlMaster=auto
ControlPersist=120s`, `forks = 64` (≥ hosts), `gathering = explicit` (the playbook needs no facts), host keys checked
(`StrictHostKeyChecking=yes` against the lab's known_hosts). The playbook does the same work as
playbooks/ha-nginx.hcl: the same three packages (apt with `update_cache` + `cache_valid_time`, so a converged host
never runs apt-get update — hactl's rule too), the five rendered files copied with the same owner and mode
(keepalived.conf validated with `keepalived -t -f %s`), Debian's default site removed, handlers
(daemon-reload, reload nginx, reload keepalived) only on change and before the service checks, nginx and keepalived
enabled and started. It does less than hactl: handlers run on all hosts at once (no rolling one-host-at-a-time
reload, no wait for the VIPs), no `nginx -t` after the site is written, no backups, no lock, no final VIP
verification.

"""
    extra = os.path.join(root, "bench", "analysis.md")
    if os.path.exists(extra):
        doc += open(extra).read()
    open(os.path.join(root, "BENCHMARKS.md"), "w").write(doc)
    print(f"wrote {os.path.join(root, 'BENCHMARKS.md')}", file=sys.stderr)


if __name__ == "__main__":
    main()
