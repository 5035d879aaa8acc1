package playbook

import (
	"strings"
	"testing"
)

// TestWebhookInstallsCurl: the event recorder posts to the webhook with
// curl, so with a webhook in the inventory the default book installs curl
// (apt-get and dnf alike); without one the step is skipped and curl is
// never asked for.
func TestWebhookInstallsCurl(t *testing.T) {
	// Both distributions carry curl in their base repositories; the
	// release fixtures list only what the default book installed so far.
	for name, curl := range map[string]string{"debian12": "7.88.1-10+deb12u8", "rocky9": "7.76.1-29.el9_4"} {
		t.Run(name, func(t *testing.T) {
			vars := labVars()
			vars[VarWebhook] = "yes"
			fx := fixtureNamed(t, name)
			fx.Repo["curl"] = curl
			r := runBookWith(t, newHost(fx), false, labFiles(t), vars)
			if err := r.results[0].Err; err != nil {
				t.Fatal(err)
			}
			tr, steps := transcript(r.conn.Calls()), eventLog(r.events)
			if !strings.Contains(tr, "install 'curl'") || !strings.Contains(steps, "changed  curl: installed curl") {
				t.Errorf("with a webhook, curl not installed:\n%s\n%s", tr, steps)
			}
			r = runBook(t, newHost(fixtureNamed(t, name)), false)
			if err := r.results[0].Err; err != nil {
				t.Fatal(err)
			}
			tr, steps = transcript(r.conn.Calls()), eventLog(r.events)
			if strings.Contains(tr, "curl") || !strings.Contains(steps, "curl: skipped: only when the inventory has a webhook") {
				t.Errorf("without a webhook, curl asked for:\n%s\n%s", tr, steps)
			}
		})
	}
}
