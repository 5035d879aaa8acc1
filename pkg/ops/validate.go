package ops

import (
	"context"

	"github.com/hashicorp/hcl/v2"

	"github.com/hactl/hactl/pkg/render"
)

// RenderResult is `hactl render`: the files written under Dir.
type RenderResult struct {
	Dir   string
	Files []render.File
	Hosts int
}

// Render writes every managed file of every host under dir, as
// dir/<host>/<path on the host>.
func Render(ctx context.Context, s *Session, dir string) (*RenderResult, error) {
	r, err := s.renderer()
	if err != nil {
		return nil, FailedError(err)
	}
	files, err := r.All(s.Inv, s.Layout)
	if err != nil {
		return nil, FailedError(err)
	}
	if err := render.WriteTree(ctx, dir, files); err != nil {
		return nil, FailedError(err)
	}
	return &RenderResult{Dir: dir, Files: files, Hosts: len(s.Inv.Hosts())}, nil
}

// ValidateResult is `hactl validate`: the inventory's size, and its
// warnings (the diagnostics that did not stop it).
type ValidateResult struct {
	Path     string
	Clusters int
	Hosts    int
	VIPs     int
	Warnings hcl.Diagnostics
}

// Validate is what the loaded inventory holds; loading it was the check.
func Validate(s *Session) *ValidateResult {
	return &ValidateResult{Path: s.Path, Clusters: len(s.Inv.Clusters), Hosts: len(s.Inv.Hosts()), VIPs: len(s.Layout.Instances), Warnings: s.Warnings}
}
