//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hactl/hactl/e2e/labkit"
)

// Probe mark colours of pkg/report's page (svg .probe.ok / .probe.fail).
var (
	probeGreen = [3]int{0x1a, 0x9e, 0x3a}
	probeRed   = [3]int{0xd6, 0x27, 0x28}
)

// TestReport runs a failover test on the lab with --report and opens the page
// in a real headless Chromium: the rendered DOM must have one lane per host
// and one mark per probe of the JSON output, and a screenshot must show green
// marks, and red ones exactly when a probe failed.
func TestReport(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium missing: make test-deps installs it (as root, with apt-get)")
	}
	lab := labkit.Reuse(t, 3) // the page needs an applied lab, not a fresh one
	inv := lab.InventoryPath()
	dir := os.Getenv("HACTL_E2E_REPORT_DIR") // keep the page and screenshot to look at
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(dir, "report.html")
	shot := filepath.Join(dir, "report.png")

	if out, errOut, code := hactl(t, "apply", "-i", inv); code != 0 {
		t.Fatalf("apply exit %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code := hactl(t, "failover-test", "-i", inv, "--mode", "stop", "--node", "lab1", "--output", "json", "--report", page)
	var doc struct {
		Scenarios []struct {
			Requests int    `json:"http_requests"`
			Failed   int    `json:"http_failed"`
			Pass     bool   `json:"pass"`
			Error    string `json:"error"`
			Timeline struct {
				Hosts  []string `json:"hosts"`
				Probes []struct {
					OK bool `json:"ok"`
				} `json:"probes"`
				Events []struct {
					Kind string `json:"kind"`
				} `json:"events"`
			} `json:"timeline"`
		} `json:"scenarios"`
	}
	decode(t, out, &doc)
	// A scenario that fails (a slow machine can miss the bound) still has
	// its page; what this test checks is the page.
	if (code != 0 && code != 1) || len(doc.Scenarios) != 1 {
		t.Fatalf("failover-test exit %d, %d scenarios\n%s", code, len(doc.Scenarios), errOut)
	}
	s := doc.Scenarios[0]
	if code != 0 {
		t.Logf("failover-test exit %d (pass=%v: %s); checking its page all the same", code, s.Pass, s.Error)
	}
	ok := 0
	for _, p := range s.Timeline.Probes {
		if p.OK {
			ok++
		}
	}
	t.Logf("stop lab1: %d probes, %d failed, hosts %v, events %v", s.Requests, s.Failed, s.Timeline.Hosts, s.Timeline.Events)
	if len(s.Timeline.Probes) != s.Requests || s.Requests-s.Failed != ok || len(s.Timeline.Hosts) != 3 {
		t.Fatalf("timeline disagrees with the figures: %+v", s)
	}
	st, err := os.Stat(page)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("%s mode %v", page, st.Mode())
	}
	raw, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing for the browser to fetch.
	for _, bad := range []string{"<script", "<link", "src=", "href=\"http", "url(", "@import"} {
		if bytes.Contains(raw, []byte(bad)) {
			t.Errorf("page contains %q", bad)
		}
	}

	dom := chromium(t, browser, dir, "--dump-dom", "file://"+page)
	if n := countRe(dom, `<g class="lane"`); n != len(s.Timeline.Hosts) {
		t.Errorf("rendered DOM: %d lanes, %d hosts", n, len(s.Timeline.Hosts))
	}
	if n := countRe(dom, `class="probe ok"`); n != ok {
		t.Errorf("rendered DOM: %d green marks, %d answered probes", n, ok)
	}
	if n := countRe(dom, `class="probe fail"`); n != s.Failed {
		t.Errorf("rendered DOM: %d red marks, %d failed probes", n, s.Failed)
	}
	for _, e := range s.Timeline.Events {
		if !strings.Contains(dom, `class="event event-`+e.Kind+`"`) {
			t.Errorf("rendered DOM: no %s event", e.Kind)
		}
	}

	chromium(t, browser, dir, "--screenshot="+shot, "--window-size=1200,900", "file://"+page)
	green, red := colourPixels(t, shot)
	t.Logf("screenshot %s: %d green and %d red probe pixels", shot, green, red)
	if green == 0 {
		t.Error("screenshot: no green probe marks")
	}
	if s.Failed > 0 && red == 0 {
		t.Errorf("screenshot: %d probes failed but no red mark", s.Failed)
	}
	if s.Failed == 0 && red != 0 {
		t.Errorf("screenshot: no probe failed but %d red pixels", red)
	}
}

// chromium runs the headless browser with everything that would reach the
// network switched off: no proxy, no background or component updates, no
// sync, and a resolver that resolves nothing (the page needs no name).
func chromium(t *testing.T, bin, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	profile := t.TempDir()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--no-proxy-server",
		"--host-resolver-rules=MAP * ~NOTFOUND", "--hide-scrollbars",
		"--user-data-dir=" + profile,
	}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+profile)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errb.String())
	}
	return out.String()
}

func countRe(s, re string) int { return len(regexp.MustCompile(re).FindAllStringIndex(s, -1)) }

// colourPixels counts the screenshot's pixels of the probe marks' colours
// (crisp edges: the marks' pixels are the exact colour; a small tolerance
// for colour management).
func colourPixels(t *testing.T, path string) (green, red int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	near := func(c [3]int, r, g, b int) bool {
		d := func(a, b int) int {
			if a > b {
				return a - b
			}
			return b - a
		}
		return d(c[0], r) <= 8 && d(c[1], g) <= 8 && d(c[2], b) <= 8
	}
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b := rgb8(img, x, y)
			switch {
			case near(probeGreen, r, g, b):
				green++
			case near(probeRed, r, g, b):
				red++
			}
		}
	}
	return green, red
}

func rgb8(img image.Image, x, y int) (int, int, int) {
	r, g, b, _ := img.At(x, y).RGBA()
	return int(r >> 8), int(g >> 8), int(b >> 8)
}
