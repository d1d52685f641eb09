package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newManCommand writes the man pages of every command, generated from the
// same definitions as the help and the shell completion. It is hidden: it
// is for packagers (`make man`), not for daily use.
func newManCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write man pages for every command into DIR",
		Hidden: true,
		Args:   exactArgs("DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("write man pages: %w", err)
			}
			b := currentBuild()
			header := &doc.GenManHeader{Title: "SLUICE", Section: "1", Source: "sluice " + b.Version, Manual: "sluice manual"}
			// The build date, not today, so that a release's pages are
			// reproducible; without one cobra takes $SOURCE_DATE_EPOCH or now.
			if t, err := time.Parse(time.RFC3339, b.BuildDate); err == nil {
				header.Date = &t
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			if err := doc.GenManTree(root, header, dir); err != nil {
				return fmt.Errorf("write man pages: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote the man pages to %s\n", dir)
			return nil
		},
	}
}
