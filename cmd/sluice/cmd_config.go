package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/term"

	"github.com/sluice-dev/sluice/agent"
	"github.com/sluice-dev/sluice/config"
)

func cmdConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: sluice config validate FILE | sluice config default")
		return errUsage
	}
	switch args[0] {
	case "validate":
		fs := flag.NewFlagSet("config validate", flag.ContinueOnError)
		fs.SetOutput(stderr)
		files, err := parseInterspersed(fs, args[1:])
		if err != nil {
			return err
		}
		if len(files) != 1 {
			fmt.Fprintln(stderr, "usage: sluice config validate FILE")
			return errUsage
		}
		return validateFile(ctx, files[0], stdout, stderr)
	case "default":
		_, err := io.WriteString(stdout, config.Default)
		return err
	}
	fmt.Fprintf(stderr, "sluice config: unknown subcommand %q (want validate or default)\n", args[0])
	return errUsage
}

// validateFile checks everything that can be checked without privileges.
// Exit status 1 means the config has errors; warnings alone pass. An
// interrupt (ctx) stops it between two checks, pulls and compilations.
func validateFile(ctx context.Context, path string, stdout, stderr io.Writer) error {
	p := config.NewParser()
	f, diags := p.ParseFile(path)
	if !diags.HasErrors() {
		// Image references are checked against the local store, pulling
		// what it lacks (never re-pulling: validation does not follow tags).
		fetch := agent.FetchOptions{}
		if f.Agent.Images.PullPolicy == "always" {
			fetch.PullPolicy = "missing"
		}
		images, ds := agent.FetchImages(ctx, f, fetch)
		diags = append(diags, ds...)
		if !ds.HasErrors() {
			// Also compiles each Wasm stage and gadget module and runs its
			// init with the config's params.
			diags = append(diags, agent.Check(ctx, f, images)...)
		}
	}
	if err := ctx.Err(); err != nil {
		// What failed may only have failed for the interrupt: say so
		// rather than print diagnostics that blame the config.
		return fmt.Errorf("config validate %s: interrupted: %w", path, err)
	}
	if len(diags) > 0 {
		p.WriteDiagnostics(stderr, diags, isTerminal(stderr))
	}
	if diags.HasErrors() {
		return exitError{code: 1}
	}
	fmt.Fprintf(stdout, "%s: valid (%d sources, %d sinks, %d pipelines)\n", path, len(f.Sources), len(f.Sinks), len(f.Pipelines))
	return nil
}

// loadConfig parses a config file, or the built-in default when path is "",
// printing diagnostics. It fails on errors.
func loadConfig(path string, stderr io.Writer) (*config.File, *config.Parser, error) {
	p := config.NewParser()
	var f *config.File
	var diags hcl.Diagnostics
	if path == "" {
		f, diags = p.ParseSource(config.DefaultFilename, []byte(config.Default))
	} else {
		f, diags = p.ParseFile(path)
	}
	if len(diags) > 0 {
		p.WriteDiagnostics(stderr, diags, isTerminal(stderr))
	}
	if diags.HasErrors() {
		return nil, nil, exitError{code: 1}
	}
	return f, p, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
