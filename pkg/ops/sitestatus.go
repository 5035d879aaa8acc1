package ops

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/hactl/hactl/pkg/render"
)

// CertWarnDays: a certificate with fewer days left is a warning in status
// (the inventory's own check warns at the same bound).
const CertWarnDays = 14

// SiteStatus is one site of a cluster as status sees it: its certificate's
// expiry (from the inventory, which is what every host should serve) and
// whether every host serves the site's files as rendered.
type SiteStatus struct {
	Cluster string
	Site    string
	// Cert fields are nil/empty for a plain HTTP site.
	CertSubject string
	CertSHA256  string
	NotAfter    *time.Time
	DaysLeft    *int
	// Warn: fewer than CertWarnDays left (or expired).
	Warn bool
	// Consistent: every host of the cluster serves the site's files (its
	// server file, certificate, key, the pools) as rendered; nil when a
	// host could not be read.
	Consistent *bool
	// DriftHosts are the hosts where one of them differs, each with the
	// files.
	DriftHosts []string
	DriftFiles map[string][]string
}

// siteStatuses derives the sites' status from the hosts' drift lists.
func (s *Session) siteStatuses(hosts []HostStatus, now time.Time) []SiteStatus {
	byHost := map[string]HostStatus{}
	for _, h := range hosts {
		byHost[h.Name] = h
	}
	var out []SiteStatus
	for _, c := range s.Inv.Clusters {
		for _, site := range c.Serving.Sites {
			st := SiteStatus{Cluster: c.Name, Site: site.Name, DriftFiles: map[string][]string{}}
			if site.TLS != nil {
				if leaf := site.TLS.Leaf(); leaf != nil {
					sum := sha256.Sum256(leaf.Raw)
					na := leaf.NotAfter
					days := int(na.Sub(now).Hours() / 24)
					st.CertSubject, st.CertSHA256, st.NotAfter, st.DaysLeft = leaf.Subject.String(), hex.EncodeToString(sum[:]), &na, &days
					st.Warn = days < CertWarnDays
				}
			}
			files := []string{render.SiteConf(site.Name), render.CertFile(site.Name), render.KeyFile(site.Name), render.PoolsConf}
			known, same := true, true
			for _, h := range c.Hosts {
				hs, ok := byHost[h.Name]
				if !ok {
					continue // not asked (--limit)
				}
				if !hs.Reachable {
					known = false
					continue
				}
				for _, d := range hs.Drift {
					for _, f := range files {
						if strings.HasPrefix(d, f+" ") {
							st.DriftFiles[h.Name] = append(st.DriftFiles[h.Name], d)
						}
					}
				}
				if len(st.DriftFiles[h.Name]) > 0 {
					same = false
					st.DriftHosts = append(st.DriftHosts, h.Name)
				}
			}
			if known || !same {
				st.Consistent = &same
			}
			out = append(out, st)
		}
	}
	return out
}

// now is the run's time: Deps.Clock's, else the wall clock.
func (s *Session) now() time.Time {
	if s.deps.Clock != nil {
		return s.deps.Clock.Now()
	}
	return time.Now()
}
