package render

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeTools writes pgrep and systemctl stand-ins into dir. nginx's unit
// reports "deactivating" for the first `stopping` is-active calls (a stop
// job whose ExecStopPost is still running: no nginx process left), then
// "inactive". A start while the stop job runs replaces it — systemd cancels
// the stop ("Job for nginx.service canceled") — unless --job-mode=fail,
// which refuses. Every call is logged with the unit's state at that moment.
func fakeTools(t *testing.T, dir string, stopping int) string {
	t.Helper()
	state := filepath.Join(dir, "state")
	log := filepath.Join(dir, "log")
	if err := os.WriteFile(state, []byte(strings.Repeat("d\n", stopping)), 0o644); err != nil {
		t.Fatal(err)
	}
	tools := map[string]string{
		"pgrep": `#!/bin/sh
[ -e "` + dir + `/running" ]
`,
		"systemctl": `#!/bin/sh
S=` + state + `; L=` + log + `
st=inactive; [ -s "$S" ] && st=deactivating
case "$1" in
is-active)
	[ -s "$S" ] && sed -i 1d "$S"
	echo "$st"; [ "$st" = active ] ;;
start)
	echo "start $* while $st" >> "$L"
	if [ "$st" = deactivating ]; then
		case " $* " in *" --job-mode=fail "*) exit 1 ;; esac
		echo "stop job canceled" >> "$L"
	fi
	: > "$S"; touch "` + dir + `/running" ;;
*) echo "unexpected: $*" >> "$L"; exit 1 ;;
esac
`,
	}
	for name, body := range tools {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return log
}

// TestCheckScriptLetsAStopFinish is issue 23's eighth defect: the check
// script ran while `systemctl stop nginx` was still in its ExecStopPost (no
// nginx process, unit deactivating) and its `systemctl start` replaced the
// stop job: the stop failed with "Job for nginx.service canceled" (3 of 15
// `failover-test --mode nginx` runs on the lab). The script lets a stop in
// progress finish, then starts nginx without ever cancelling a job.
func TestCheckScriptLetsAStopFinish(t *testing.T) {
	inv, l := load(t, "../../inventory/prod.hcl", nil)
	var script []byte
	for _, f := range renderAll(t, inv, l) {
		if f.Path == CheckScript {
			script = f.Content
			break
		}
	}
	for _, tc := range []struct {
		name     string
		stopping int // is-active calls that still say deactivating
		wantExit int
	}{
		{"stopped", 0, 0},
		{"stop finishing", 3, 0},
		{"stop taking longer than the script waits", 1000, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			log := fakeTools(t, dir, tc.stopping)
			// The script pins PATH; the stand-ins go first.
			s := bytes.Replace(script, []byte("PATH=/usr/sbin"), []byte("PATH="+dir+":/usr/sbin"), 1)
			cmd := exec.Command("sh", "-c", string(s))
			cmd.Env = []string{"PATH=/usr/bin:/bin"}
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			calls, _ := os.ReadFile(log)
			if strings.Contains(string(calls), "canceled") || strings.Contains(string(calls), "unexpected") {
				t.Errorf("the check script cancelled a stop in progress:\n%s", calls)
			}
			if code != tc.wantExit {
				t.Errorf("exit %d, want %d\n%s\n%s", code, tc.wantExit, out, calls)
			}
			if tc.wantExit == 0 && !strings.Contains(string(calls), "while inactive") {
				t.Errorf("nginx was not started once the stop had finished:\n%s", calls)
			}
		})
	}
}
