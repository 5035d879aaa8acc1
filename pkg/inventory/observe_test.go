package inventory

import (
	"strings"
	"testing"
)

const webhookBase = `
cluster "lab" {
  interface = "eth0"
  gateway   = "198.18.0.1"
  auth_pass = "secret1"
  host "lab1" {
    address = "198.18.0.11"
    vip     = "198.18.0.201/24"
  }
  host "lab2" {
    address = "198.18.0.12"
    vip     = "198.18.0.202/24"
  }
}
`

func TestWebhook(t *testing.T) {
	env := func(n string) (string, bool) {
		v, ok := map[string]string{"TOKEN": "t0k3n"}[n]
		return v, ok
	}
	load := func(block string) (*Inventory, string) {
		inv, diags := NewLoader(Options{LookupEnv: env}).Load("inv.hcl", []byte(webhookBase+block))
		var msgs []string
		for _, d := range diags {
			msgs = append(msgs, d.Subject.String()+": "+d.Summary+": "+d.Detail)
		}
		return inv, strings.Join(msgs, "\n")
	}
	inv, msg := load(`webhook {
  url           = "http://198.18.0.1:9099/hook"
  secret_header = "X-Hactl-Token"
  secret        = env("TOKEN")
}`)
	if inv == nil || msg != "" {
		t.Fatalf("valid block refused: %s", msg)
	}
	if w := inv.Webhook; w.URL != "http://198.18.0.1:9099/hook" || w.Header != "X-Hactl-Token" || w.Secret.Reveal() != "t0k3n" {
		t.Errorf("webhook %+v", w)
	}
	if inv, _ := load(""); inv.Webhook != nil {
		t.Error("no block must mean no webhook")
	}
	for _, tc := range []struct{ block, want string }{
		{`webhook { url = "ftp://x/y" }`, `inv.hcl:15,17-28: Invalid webhook url`},
		{`webhook { url = "http://u:p@x/y" }`, "Credentials in webhook url"},
		{`webhook {
  url    = "http://x/y"
  secret = env("TOKEN")
}`, "inv.hcl:17,12-24: Incomplete webhook secret"},
		{`webhook {
  url           = "http://x/y"
  secret_header = "Bad Header"
  secret        = env("TOKEN")
}`, "Invalid secret_header"},
		{`webhook {
  url           = "http://x/y"
  secret_header = "X-T"
  secret        = "a'b"
}`, "Invalid webhook secret"},
	} {
		inv, msg := load(tc.block)
		if inv != nil || !strings.Contains(msg, tc.want) {
			t.Errorf("%s\ngot %q, want %q", tc.block, msg, tc.want)
		}
		if strings.Contains(msg, "t0k3n") || strings.Contains(msg, "a'b") {
			t.Errorf("a diagnostic names the secret: %s", msg)
		}
	}
}
