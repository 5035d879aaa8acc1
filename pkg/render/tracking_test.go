package render

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTracking: every instance tracks the drain file and nginx's event file
// (track_file on keepalived 2.0 and later, polling vrrp_scripts before),
// beside the article's chk_http_port, which stays as it was.
func TestTracking(t *testing.T) {
	inv, l := load(t, "../../inventory/prod.hcl", nil)
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"modern", Options{KeepalivedVersion: "2.2.7"}},
		{"legacy", Options{KeepalivedVersion: "1.3.5", Legacy: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, err := r.HostWith(inv, l, "master-node", tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if tc.o.Legacy {
				goldenTree(t, "prod-keepalived-1.3", files)
			}
			var conf *node
			for _, f := range files {
				if f.Path == KeepalivedConf {
					conf = parseKeepalived(t, string(f.Content))
				}
			}
			_, scripts := semantics(t, renderConf(t, files))
			if got := scripts["chk_http_port"]; got != (scriptSemantics{Script: CheckScript, Interval: "2", Weight: "-5", Fall: "2", Rise: "1"}) {
				t.Errorf("chk_http_port changed: %+v", got)
			}
			for _, in := range conf.all("vrrp_instance") {
				var tracked []string
				for _, blk := range []string{"track_script", "track_file"} {
					if b := in.child(blk); b != nil {
						for _, c := range b.Children {
							tracked = append(tracked, c.Key)
						}
					}
				}
				want := "chk_http_port,hactl_drain,hactl_nginx"
				if tc.o.Legacy {
					want = "chk_http_port,hactl_drain_low,hactl_drain_out,hactl_nginx"
				}
				if got := strings.Join(tracked, ","); got != want {
					t.Errorf("instance %v tracks %s, want %s", in.Args, got, want)
				}
			}
			if tc.o.Legacy {
				if len(conf.all("track_file")) != 0 {
					t.Error("keepalived 1.3 has no track_file")
				}
				for name, want := range map[string]scriptSemantics{
					"hactl_drain_low": {Script: TrackScript + " " + DrainFile + " 0", Interval: "1", Weight: "-253", Fall: "1", Rise: "1"},
					"hactl_drain_out": {Script: TrackScript + " " + DrainFile + " -253", Interval: "1", Weight: "0", Fall: "1", Rise: "1"},
					"hactl_nginx":     {Script: TrackScript + " " + NginxDownFile + " 0 0", Interval: "1", Weight: "0", Fall: "1", Rise: "1"},
				} {
					if scripts[name] != want {
						t.Errorf("%s = %+v, want %+v", name, scripts[name], want)
					}
				}
				return
			}
			for name, want := range map[string][2]string{"hactl_drain": {DrainFile, "1"}, "hactl_nginx": {NginxDownFile, "0"}} {
				var n *node
				for _, x := range conf.all("track_file") {
					if x.Args[0] == name {
						n = x
					}
				}
				if n == nil || n.arg("file") != want[0] || n.arg("weight") != want[1] || n.arg("init_file") != "0" {
					t.Errorf("track_file %s = %+v, want file %s weight %s init_file 0", name, n, want[0], want[1])
				}
			}
		})
	}
}

func renderConf(t *testing.T, files []File) string {
	t.Helper()
	for _, f := range files {
		if f.Path == KeepalivedConf {
			return string(f.Content)
		}
	}
	t.Fatal("no keepalived.conf")
	return ""
}

func TestLegacyTracking(t *testing.T) {
	for v, want := range map[string]bool{"1.3.5": true, "1.4.2": true, "2.0.10": false, "2.2.7": false, "": false} {
		if LegacyTracking(v) != want {
			t.Errorf("LegacyTracking(%q) = %v", v, !want)
		}
	}
}

// TestTrackScript runs the rendered hactl_track.sh as keepalived 1.3 would:
// the drain steps and nginx's event file, a missing file, and garbage.
func TestTrackScript(t *testing.T) {
	inv, l := load(t, "../../inventory/prod.hcl", nil)
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	files, err := r.HostWith(inv, l, "master-node", Options{Legacy: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "hactl_track.sh")
	for _, f := range files {
		if f.Path == TrackScript {
			if err := os.WriteFile(script, f.Content, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	data := filepath.Join(dir, "v")
	for _, tc := range []struct {
		content string // "" + missing: no file
		missing bool
		args    []string
		ok      bool
	}{
		{"0\n", false, []string{"0"}, true},
		{"-3\n", false, []string{"0"}, false},
		{"-253\n", false, []string{"0"}, false},
		{"-253\n", false, []string{"-253"}, true},
		{"-254\n", false, []string{"-253"}, false},
		{"", true, []string{"0"}, true},
		{"junk", false, []string{"0"}, true},
		{"5-3", false, []string{"0"}, true},
		{"0\n", false, []string{"0", "0"}, true},
		{"1\n", false, []string{"0", "0"}, false},
		{"", true, []string{"0", "0"}, true},
	} {
		_ = os.Remove(data)
		if !tc.missing {
			if err := os.WriteFile(data, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		err := exec.Command("sh", append([]string{script, data}, tc.args...)...).Run()
		if (err == nil) != tc.ok {
			t.Errorf("content %q (missing %v) args %v: exit %v, want ok=%v", tc.content, tc.missing, tc.args, err, tc.ok)
		}
	}
}
