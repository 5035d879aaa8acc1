package inventory

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Webhook is where every host posts its VRRP transitions (one JSON body per
// transition). Header is sent with each POST: "" for none; its value is a
// secret (it only reaches the host's 0600 events.conf).
type Webhook struct {
	URL      string
	Header   string
	Secret   Secret
	DefRange hcl.Range
}

// webhookSchema is the top-level `webhook` block:
//
//	webhook {
//	  url           = "https://hooks.example.com/hactl"
//	  secret_header = "X-Hactl-Token"         # optional, with secret
//	  secret        = env("HACTL_WEBHOOK_TOKEN")
//	}
type webhookSchema struct {
	URL          string    `hcl:"url"`
	SecretHeader *string   `hcl:"secret_header,optional"`
	Secret       *string   `hcl:"secret,optional"`
	Body         hcl.Body  `hcl:",body"`
	DefRange     hcl.Range `hcl:",def_range"`
}

// headerName is an HTTP field name (RFC 9110 token).
var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// buildWebhook checks the block; every problem names the attribute's place.
func buildWebhook(raw []*webhookSchema) (*Webhook, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	if len(raw) == 0 {
		return nil, nil
	}
	if len(raw) > 1 {
		diags = append(diags, dupBlock("webhook", raw[1].DefRange, raw[0].DefRange))
	}
	w := raw[0]
	r := attrRanges(w.Body)
	out := &Webhook{URL: w.URL, DefRange: w.DefRange}
	u, err := url.Parse(w.URL)
	switch {
	case err != nil:
		diags = append(diags, errAt(r["url"], "Invalid webhook url", fmt.Sprintf("url %q: %v.", w.URL, err)))
	case u.Scheme != "http" && u.Scheme != "https":
		diags = append(diags, errAt(r["url"], "Invalid webhook url", fmt.Sprintf("url %q: the scheme must be http or https.", w.URL)))
	case u.Host == "":
		diags = append(diags, errAt(r["url"], "Invalid webhook url", fmt.Sprintf("url %q names no host.", w.URL)))
	case u.User != nil:
		// The URL is not a secret (it is in events.conf and may be logged):
		// credentials go in secret_header.
		diags = append(diags, errAt(r["url"], "Credentials in webhook url",
			"url must not carry a user or password; put a token in secret_header and secret (from env())."))
	case strings.ContainsAny(w.URL, "'\\ \t\r\n"):
		diags = append(diags, errAt(r["url"], "Invalid webhook url", "url must not contain quotes, backslashes or blanks (escape them as %XX)."))
	}
	switch {
	case (w.SecretHeader == nil) != (w.Secret == nil):
		at := r["secret_header"]
		if w.SecretHeader == nil {
			at = r["secret"]
		}
		diags = append(diags, errAt(at, "Incomplete webhook secret", "secret_header and secret go together: set both or neither."))
	case w.SecretHeader != nil:
		if !headerName.MatchString(*w.SecretHeader) {
			diags = append(diags, errAt(r["secret_header"], "Invalid secret_header",
				fmt.Sprintf("secret_header %q is not an HTTP header name (letters, digits and !#$%%&'*+.^_`|~-).", *w.SecretHeader)))
		}
		// Never quote the value: it is a secret.
		if *w.Secret == "" || strings.ContainsRune(*w.Secret, '\'') || strings.ContainsFunc(*w.Secret, unsafeRune) {
			diags = append(diags, errAt(r["secret"], "Invalid webhook secret",
				"secret must not be empty nor contain single quotes or control characters (it is sent as one header line)."))
		}
		out.Header, out.Secret = *w.SecretHeader, NewSecret(*w.Secret)
	}
	return out, diags
}
