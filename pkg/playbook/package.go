package playbook

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/remote"
)

// Package makes sure packages are installed. "a|b" is satisfied by either and
// installs a when neither is there. NamesByFamily replaces Names on the OS
// whose key (facts.OS.Keys: "el7", "el", "debian12", "ubuntu22.04", "debian")
// matches first, most specific key first; an empty list means "nothing to
// install here". UnlessInstalled: nothing to do when any of these is
// installed (e.g. a repository package that is only needed to get nginx).
// RequiresByFamily: on the OS whose key matches first, the step installs
// nothing unless these are installed (e.g. epel-release for a package only
// EPEL has); hactl does not add a repository for an optional tool.
type Package struct {
	Names            []string
	NamesByFamily    map[string][]string
	UnlessInstalled  []string
	RequiresByFamily map[string][]string
}

func (p *Package) Kind() string { return "package" }

// Needs asks for every name of every OS: the OS is not known before the
// facts are in, and asking rpm or dpkg about an unknown name costs nothing.
func (p *Package) Needs() facts.Request {
	var all []string
	lists := [][]string{p.Names, p.UnlessInstalled}
	for _, m := range []map[string][]string{p.NamesByFamily, p.RequiresByFamily} {
		for _, k := range sortedKeys(m) {
			lists = append(lists, m[k])
		}
	}
	for _, l := range lists {
		for _, n := range l {
			all = append(all, strings.Split(n, "|")...)
		}
	}
	return facts.Request{Packages: all}
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// names is the list that applies to the host's OS.
func (p *Package) names(f *facts.Facts) []string {
	return byOS(f, p.NamesByFamily, p.Names)
}

// byOS is m's list for the host's most specific OS key, else def.
func byOS(f *facts.Facts, m map[string][]string, def []string) []string {
	for _, k := range f.OS.Keys() {
		if l, ok := m[k]; ok {
			return l
		}
	}
	return def
}

func (p *Package) missing(f *facts.Facts) []string {
	var miss []string
outer:
	for _, n := range p.names(f) {
		alts := strings.Split(n, "|")
		for _, a := range alts {
			if f.Installed(a) {
				continue outer
			}
		}
		miss = append(miss, alts[0])
	}
	return miss
}

// noStarts keeps Debian's maintainer scripts from starting services while
// apt installs: they ask /usr/sbin/policy-rc.d, and 101 forbids. Without
// it a package starts its service with whatever configuration the host has:
// a keepalived.conf without a vrrp_instance never tells systemd it is
// ready, so the install waited out systemd's 90 s start timeout (e2e
// TestRound3), and nginx started with Debian's default site. hactl starts
// both itself, once their files are in place (the service step and the
// handlers: "reload" starts a stopped unit). The policy is a symlink to a
// file in /run, so a host that reboots mid-install forgets it (a dangling
// symlink is not executable, which invoke-rc.d reads as "no policy"); a
// leftover symlink of hactl's is replaced, and an operator's own
// policy-rc.d is left alone and obeyed.
const noStarts = `P=/usr/sbin/policy-rc.d R=/run/hactl/policy-rc.d; ` + noStartsBody

// noStartsBody needs $P (the policy's path) and $R (its file in /run).
const noStartsBody = `if [ -L "$P" ] && [ "$(readlink "$P")" = "$R" ]; then rm -f "$P"; fi; ` +
	`if [ ! -e "$P" ] && [ ! -L "$P" ]; then mkdir -p "${R%/*}" && printf '#!/bin/sh\n# hactl: services start once hactl wrote their configuration\nexit 101\n' >"$R" && chmod 0755 "$R" && ln -s "$R" "$P" && ` +
	`trap 'rm -f "$P" "$R"' EXIT && trap 'exit 129' HUP INT TERM; fi; `

// InstallCommand is the package manager's non-interactive install. apt-get
// update runs only here, i.e. only when something must be installed: a
// converged host never pays for it. On apt, no service starts during the
// install (noStarts).
func InstallCommand(pm string, pkgs []string) (string, error) {
	list := remote.Join(pkgs...)
	switch pm {
	case "apt-get":
		return "export DEBIAN_FRONTEND=noninteractive; " + noStarts +
			"apt-get -q -o DPkg::Lock::Timeout=300 update && " +
			"apt-get -q -y -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install " + list, nil
	case "yum":
		// yum 3 (EL 7) exits 0 when some names do not exist; this option
		// (yum >= 3.4.3-161, CentOS 7.7) makes a missing package an error.
		return "yum -q -y --setopt=skip_missing_names_on_install=False install " + list, nil
	case "dnf":
		// dnf fails on a missing name by default (strict=True).
		return "dnf -q -y install " + list, nil
	}
	return "", fmt.Errorf("no supported package manager (apt-get, dnf, yum)")
}

func (p *Package) Plan(_ context.Context, t *Target) (Plan, error) {
	for _, u := range p.UnlessInstalled {
		if t.Facts.Installed(u) {
			return Plan{Summary: "not needed (" + u + " is installed)"}, nil
		}
	}
	if len(p.names(t.Facts)) == 0 {
		return Plan{Summary: "nothing to install on " + t.Facts.OS.PrettyName}, nil
	}
	for _, r := range byOS(t.Facts, p.RequiresByFamily, nil) {
		if !t.Facts.Installed(r) {
			return Plan{Summary: "skipped: needs " + r + ", which is not installed"}, nil
		}
	}
	miss := p.missing(t.Facts)
	if len(miss) == 0 {
		return Plan{Summary: "installed"}, nil
	}
	list := strings.Join(miss, " ")
	cmd, err := InstallCommand(t.Facts.PackageManager, miss)
	if err != nil {
		return Plan{}, err
	}
	return Plan{
		Summary: "install " + list, Done: done("installed " + list), Refresh: true,
		Ops: []Op{{Cmd: cmd, Fail: prefix("install " + list)}},
	}, nil
}

// --- template -----------------------------------------------------------------
