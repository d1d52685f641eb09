package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// Set by the Makefile with -ldflags -X (scripts/version.sh computes them).
// A plain `go build` or `go install` leaves them empty, and currentBuild
// takes what the Go toolchain stamped into the binary instead.
var (
	version   string // semantic version: v1.2.3, or a Go pseudo-version between tags
	commit    string // full commit hash
	buildDate string // RFC 3339, UTC
)

// buildInfo says which sluice this is.
type buildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Modified  bool   `json:"modified"` // built from a checkout with uncommitted changes
	BuildDate string `json:"build_date"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// currentBuild reads the version the Makefile set, falling back on what
// the toolchain recorded: the module version `go install ...@v1.2.3`
// stamps, or the pseudo-version and commit Go derives from the checkout.
func currentBuild() buildInfo {
	b := buildInfo{
		Version:   version,
		Commit:    commit,
		BuildDate: buildDate,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		var vcsTime string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.Commit == "" {
					b.Commit = s.Value
				}
			case "vcs.modified":
				b.Modified = s.Value == "true"
			case "vcs.time":
				vcsTime = s.Value
			}
		}
		if v := info.Main.Version; b.Version == "" && v != "" && v != "(devel)" {
			b.Version = v
		}
		if b.Version == "" && b.Commit != "" && vcsTime != "" {
			// What Go itself stamps for a commit without a tag.
			b.Version = "v0.0.0-" + strings.NewReplacer("-", "", ":", "", "T", "", "Z", "").Replace(vcsTime) + "-" + short(b.Commit, 12)
			if b.Modified {
				b.Version += "+dirty"
			}
		}
	}
	if strings.HasSuffix(b.Version, "+dirty") {
		b.Modified = true
	}
	if b.Version == "" {
		b.Version = "v0.0.0-dev"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	if b.BuildDate == "" {
		b.BuildDate = "unknown"
	}
	return b
}

func short(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func newVersionCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build date and Go version",
		Example: `  sluice version
  sluice version -o json | jq -r .version`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := currentBuild()
			w := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(b)
			}
			modified := ""
			if b.Modified {
				modified = " (with uncommitted changes)"
			}
			_, err := fmt.Fprintf(w, "sluice %s\ncommit:     %s%s\nbuilt:      %s\ngo version: %s\nplatform:   %s\n",
				b.Version, b.Commit, modified, b.BuildDate, b.GoVersion, b.Platform)
			return err
		},
	}
	enumVarP(cmd, cmd.Flags(), &output, "output", "o", "text", []string{"text", "json"}, "output format")
	return cmd
}
