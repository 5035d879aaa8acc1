package playbook

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/hactl/hactl/pkg/facts"
	"github.com/hactl/hactl/pkg/remote"
)

// Absent removes a file or symlink, keeping a copy outside any directory a
// daemon includes (a backup left in sites-enabled/ would be loaded by nginx).
type Absent struct{ Path string }

// BackupDir holds the copies of files hactl removed.
const BackupDir = "/var/backups/hactl"

// BackupPath is where a file hactl removes is kept: in BackupDir, named
// after its path and the run's stamp.
func BackupPath(p, stamp string) string {
	return path.Join(BackupDir, strings.ReplaceAll(strings.TrimPrefix(p, "/"), "/", "_")+".hactl-"+stamp)
}

func (m *Absent) Kind() string         { return "file" }
func (m *Absent) Needs() facts.Request { return facts.Request{Paths: []string{m.Path}} }

func (m *Absent) Plan(_ context.Context, t *Target) (Plan, error) {
	if !t.Facts.Files[m.Path].Exists {
		return Plan{Summary: "absent"}, nil
	}
	dst := BackupPath(m.Path, t.Stamp)
	return Plan{
		Summary: "remove (kept as " + dst + ")",
		Done:    done("removed (kept as " + dst + ")"),
		Ops: []Op{{
			Cmd: fmt.Sprintf("mkdir -p %s && chmod 0700 %s && mv -f %s %s",
				BackupDir, BackupDir, remote.Quote(m.Path), remote.Quote(dst)),
			Swap: &Swap{Path: m.Path, Backup: dst},
			Fail: prefix("remove " + m.Path),
		}},
	}, nil
}

// --- service ------------------------------------------------------------------
