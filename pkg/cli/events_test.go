package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hactl/hactl/pkg/remote"
	"github.com/hactl/hactl/pkg/remote/remotetest"
)

// TestEventsCommand: `hactl events` over fake hosts: each host's clock is
// read, its log merged; a move within --since is listed with its cause,
// and --since 0 is a usage error.
func TestEventsCommand(t *testing.T) {
	now := time.Now().UTC()
	rec := func(host string, ago time.Duration, kind, from, to, cause string, seq int) string {
		return fmt.Sprintf(`{"time":%q,"host":%q,"cluster":"lab","kind":%q,"instance":"VI_1","vip":"198.18.0.201/24","from":%q,"to":%q,"priority":101,"cause":%q,"seq":%d}`+"\n",
			now.Add(-ago).Format(time.RFC3339Nano), host, kind, from, to, cause, seq)
	}
	logs := map[string]string{
		"lab1": rec("lab1", 2*time.Minute, "addr", "UNKNOWN", "present", "", 1) +
			rec("lab1", time.Minute, "addr", "present", "absent", "", 2) +
			rec("lab1", time.Minute-10*time.Millisecond, "vrrp", "MASTER", "STOP", "keepalived stopped", 3),
		"lab2": rec("lab2", time.Minute-600*time.Millisecond, "addr", "absent", "present", "", 1),
	}
	dial := func(_ context.Context, cfg remote.Config) (remote.Conn, error) {
		return &remotetest.Fake{Handler: func(cmd string, _ []byte) remote.Result {
			if strings.HasPrefix(cmd, "date ") {
				t := time.Now()
				return remote.Result{Stdout: []byte(fmt.Sprintf("%d.%06d\n", t.Unix(), t.Nanosecond()/1000))}
			}
			return remote.Result{Stdout: []byte(logs[cfg.Name])}
		}}, nil
	}
	r := runWith(t, Deps{Dial: dial}, nil, "events", lab, "--since", "10m", "--output", "json")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	var doc struct {
		OK    bool `json:"ok"`
		Hosts []struct {
			SkewS *float64 `json:"skew_s"`
		} `json:"hosts"`
		VIPs []struct {
			VIP   string `json:"vip"`
			Moves []struct {
				From, To, Cause string
				GapS            float64 `json:"gap_s"`
			} `json:"moves"`
		} `json:"vips"`
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatal(err)
	}
	if !doc.OK || len(doc.Hosts) != 3 || doc.Hosts[0].SkewS == nil || len(doc.VIPs) != 3 {
		t.Fatalf("%s", r.out)
	}
	m := doc.VIPs[0].Moves
	if len(m) != 1 || m[0].From != "lab1" || m[0].To != "lab2" || m[0].Cause != "keepalived stopped on lab1" || m[0].GapS < 0.5 || m[0].GapS > 0.7 {
		t.Errorf("moves %+v", m)
	}
	if r := runWith(t, Deps{Dial: dial}, nil, "events", lab, "--since", "0s"); r.code != ExitUsage {
		t.Errorf("--since 0s: exit %d, want %d", r.code, ExitUsage)
	}
	if r := runWith(t, Deps{Dial: dial}, nil, "events", lab, "--since", "1s"); r.code != 0 || !strings.Contains(r.out, "no move") {
		t.Errorf("--since 1s: exit %d\n%s", r.code, r.out)
	}
}
