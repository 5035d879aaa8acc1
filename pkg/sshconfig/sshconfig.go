// Package sshconfig reads the few OpenSSH client settings hactl honours
// (HostName, User, Port, IdentityFile, ProxyJump) from an ssh_config file, so
// hosts the inventory does not fully specify connect the way `ssh` would.
//
// Parsing is github.com/kevinburke/ssh_config's: it keeps OpenSSH's rules
// (first obtained value wins, Host patterns with * ? and !negation, Include,
// Match host), which a hand-written parser would get subtly wrong.
package sshconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	sshconfig "github.com/kevinburke/ssh_config"
)

// File is one parsed ssh_config. The zero value (and nil) is an empty file:
// every lookup finds nothing.
type File struct {
	Path string
	cfg  *sshconfig.Config
}

// Load parses path. A file that does not exist is not an error: most
// machines have no ~/.ssh/config, and then nothing changes.
func Load(path string) (*File, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &File{Path: path}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ssh config: %w", err)
	}
	defer f.Close()
	cfg, err := sshconfig.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("ssh config %s: %w", path, err)
	}
	return &File{Path: path, cfg: cfg}, nil
}

// Parse reads ssh_config text (for tests).
func Parse(path, text string) (*File, error) {
	cfg, err := sshconfig.DecodeBytes([]byte(text))
	if err != nil {
		return nil, fmt.Errorf("ssh config %s: %w", path, err)
	}
	return &File{Path: path, cfg: cfg}, nil
}

// Settings are what the file says for one host; empty/zero = not said.
type Settings struct {
	HostName     string
	User         string
	Port         int
	IdentityFile string // the first IdentityFile, "~" and %-tokens expanded
	ProxyJump    string // as written ("none" included); chains are the caller's problem
}

// Lookup returns the settings for a host known by several names — hactl
// passes the inventory host name first, then its address. A Host block
// applies when one of its patterns matches any of the names and no negated
// pattern matches any of them; as in OpenSSH, for every keyword the first
// value found in file order wins.
//
// home expands "~" and %d; user (the login user already decided) expands %r.
func (f *File) Lookup(home string, names ...string) (Settings, error) {
	var s Settings
	if f == nil || f.cfg == nil || len(names) == 0 {
		return s, nil
	}
	get := func(key string) string {
		for _, h := range f.cfg.Hosts {
			if !matches(h, names) {
				continue
			}
			for _, n := range h.Nodes {
				switch t := n.(type) {
				case *sshconfig.KV:
					if strings.EqualFold(t.Key, key) {
						return unquote(t.Value)
					}
				case *sshconfig.Include:
					for _, name := range names {
						if v := t.Get(name, key); v != "" {
							return unquote(v)
						}
					}
				}
			}
		}
		return ""
	}
	alias := names[0]
	s.HostName = expand(get("HostName"), alias, "", home)
	s.User = get("User")
	if p := get("Port"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return s, fmt.Errorf("%s: Port %q for %s is not 1-65535", f.Path, p, alias)
		}
		s.Port = n
	}
	if id := get("IdentityFile"); id != "" && !strings.EqualFold(id, "none") {
		s.IdentityFile = expand(id, alias, s.User, home)
		if strings.HasPrefix(s.IdentityFile, "~/") && home != "" {
			s.IdentityFile = filepath.Join(home, s.IdentityFile[2:])
		}
	}
	s.ProxyJump = get("ProxyJump")
	return s, nil
}

// matches applies OpenSSH's Host rule to several names at once: the block
// is skipped when a negated pattern matches any name.
func matches(h *sshconfig.Host, names []string) bool {
	found := false
	for _, p := range h.Patterns {
		neg := strings.HasPrefix(p.String(), "!")
		one := p
		if neg {
			var err error
			if one, err = sshconfig.NewPattern(strings.TrimPrefix(p.String(), "!")); err != nil {
				continue
			}
		}
		probe := &sshconfig.Host{Patterns: []*sshconfig.Pattern{one}}
		for _, n := range names {
			if probe.Matches(n) {
				if neg {
					return false
				}
				found = true
			}
		}
	}
	return found
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}

// expand handles the tokens that make sense before a connection exists:
// %h (the alias), %r (remote user), %d (home), %%. Others stay as written.
func expand(v, host, user, home string) string {
	if !strings.Contains(v, "%") {
		return v
	}
	r := strings.NewReplacer("%%", "%", "%h", host, "%r", user, "%d", home)
	return r.Replace(v)
}
