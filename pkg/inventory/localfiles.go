package inventory

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// checkKnownHosts refuses an explicit known_hosts_file that exists and is
// not a regular file (after symlinks): "/dev/null" reads as empty, so every
// host key would be unknown, and with --accept-new-host-keys each run would
// trust whatever key it meets (and a rename would replace the device). A
// file that does not exist yet is fine: accept-new creates it.
func (l *Loader) checkKnownHosts(raw *fileSchema) hcl.Diagnostics {
	blocks := append([]*sshSchema(nil), raw.SSH...)
	for _, c := range raw.Clusters {
		for _, h := range c.Hosts {
			blocks = append(blocks, h.SSH...)
		}
	}
	var diags hcl.Diagnostics
	for _, b := range blocks {
		if b.KnownHostsFile == nil || *b.KnownHostsFile == "" {
			continue
		}
		p := *b.KnownHostsFile
		if rest, ok := strings.CutPrefix(p, "~/"); ok {
			home, _ := l.opts.LookupEnv("HOME")
			if home == "" {
				continue // remote reports a home it cannot find
			}
			p = filepath.Join(home, rest)
		}
		st, err := l.opts.Stat(p)
		if err != nil || st.Mode().IsRegular() {
			continue
		}
		diags = append(diags, errAt(attrRanges(b.Body)["known_hosts_file"], "known_hosts_file is not a regular file",
			fmt.Sprintf("known_hosts_file %q is a %s, not a file: host keys would never be on record (%s reads as empty), and --accept-new-host-keys "+
				"would trust any key on every run. Name a file that holds the hosts' keys (or none yet, for --accept-new-host-keys to create).",
				*b.KnownHostsFile, kind(st.Mode()), *b.KnownHostsFile)))
	}
	return diags
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}
