package prune

import (
	"context"
	"strings"
	"testing"

	"github.com/hactl/hactl/pkg/playbook"
	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
	"github.com/hactl/hactl/pkg/render"
)

// TestRemoveFilesTakesTheSites: destroy and prune take the serving layer
// too: its include file like every managed file, and its directory (keys
// included) whole into the private backup directory, after which nginx is
// reloaded when its configuration tests clean.
func TestRemoveFilesTakesTheSites(t *testing.T) {
	f := &remotetest.Fake{Handler: func(cmd string, _ []byte) remote.Result {
		if strings.Contains(cmd, "mv -f '"+render.SitesDir+"'") {
			return remote.Result{Stdout: []byte("removed " + render.SitesInclude + "\nremoved " + render.SitesDir + "\n")}
		}
		return remote.Result{}
	}}
	done, err := RemoveFiles(context.Background(), f, "S", false)
	if err != nil {
		t.Fatal(err)
	}
	script := f.Runs()[0].Cmd
	if !strings.Contains(script, "mv -f '"+render.SitesDir+"' '"+playbook.BackupPath(render.SitesDir, "S")+"'") ||
		!strings.Contains(script, "mv -f '"+render.SitesInclude+"'") {
		t.Errorf("sites not moved into the backups:\n%s", script)
	}
	if len(done) != 2 || len(f.Runs()) != 2 || !strings.Contains(f.Runs()[1].Cmd, "nginx -t") {
		t.Errorf("done %v, runs %+v", done, f.Runs())
	}
}
