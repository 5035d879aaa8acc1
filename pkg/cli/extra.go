package cli

import (
	"context"
	"errors"

	"github.com/spf13/cobra"
)

func extraCommands(ctx context.Context, g *Globals) []*cobra.Command { return nil }

func planOnline(ctx context.Context, g *Globals, o *PlanOptions, l *Loaded) error {
	return &ExitError{Code: ExitUsage, Err: errors.New("plan over SSH is not available yet: use --offline")}
}
