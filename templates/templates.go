// Package templates holds the files hactl renders onto every load balancer.
// They live in their own package because go:embed cannot reach "..".
package templates

import "embed"

// FS holds every *.tmpl file of this directory.
//
//go:embed *.tmpl
var FS embed.FS
