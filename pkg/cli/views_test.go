package cli

import "github.com/hactl/hactl/pkg/views"

// The JSON documents the tests decode, under the names they had when the
// command layer built them.
type (
	applyJSON  = views.ApplyJSON
	hostJSON   = views.HostJSON
	statusJSON = views.StatusJSON
	change     = views.Change
)
