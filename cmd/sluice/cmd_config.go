package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sluice-dev/sluice/agent"
	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/sources"
)

func newConfigCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check a config file, or print the built-in one",
		Args:  subcommandArgs,
		RunE:  showHelp,
	}
	var privileged bool
	validate := &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a config file without running it",
		Long: `Check a config file without running it. Errors point at file:line:column.

Checked without privileges: the syntax and schema; references between
blocks; sizes, durations, ranges; NATS server URLs and listen addresses;
NATS credential and TLS files (missing, unreadable, not what they should
hold); gadgets (parsed, their params and decode plans) and the kernel they
need: each program's section, and its tracepoint, kernel function, LSM
hook or iterator in this kernel's BTF, TC interfaces, network namespaces,
the perf_event sampling limit, uprobe targets (absent ones are warnings:
the agent runs without them); image references (pulled into the local
store when missing); Wasm stages and gadget modules (compiled, their init
run with the config's params).

Tracepoints are checked in tracefs, which only root may read: as another
user they are reported as not checked, in a warning.

--privileged also loads every gadget into the kernel, with its params and
map sizes, and unloads it without attaching anything: the verifier's
verdict on each program and the kernel's on each map. It needs what the
agent needs (root, or CAP_BPF and CAP_PERFMON).

Exit status: 0 when valid (warnings alone pass), 1 with errors.`,
		Example: `  sluice config validate /etc/sluice/sluice.hcl
  sudo sluice config validate --privileged /etc/sluice/sluice.hcl
  sluice config default > sluice.hcl && sluice config validate sluice.hcl`,
		Args: exactArgs("FILE"),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return []cobra.Completion{"hcl"}, cobra.ShellCompDirectiveFilterFileExt
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if privileged {
				if err := sources.CheckPrivileges(); err != nil {
					return fmt.Errorf("config validate --privileged: %w", err)
				}
			}
			return validateFile(cmd.Context(), args[0], agent.CheckOptions{Load: privileged}, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	validate.Flags().BoolVar(&privileged, "privileged", false, "also load every gadget into the kernel, without attaching it (needs root, or CAP_BPF and CAP_PERFMON)")
	def := &cobra.Command{
		Use:     "default",
		Short:   "Print the built-in default config",
		Example: `  sluice config default > /etc/sluice/sluice.hcl`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := io.WriteString(cmd.OutOrStdout(), config.Default)
			return err
		},
	}
	cmd.AddCommand(validate, def)
	return cmd
}

// validateFile checks everything that can be checked without privileges,
// and with opts what needs them. Exit status 1 means the config has
// errors; warnings alone pass. An interrupt (ctx) stops it between two
// checks, pulls and compilations.
func validateFile(ctx context.Context, path string, opts agent.CheckOptions, stdout, stderr io.Writer) error {
	p := config.NewParser()
	f, diags := p.ParseFile(path)
	var report []string
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
			var d hcl.Diagnostics
			report, d = agent.CheckWith(ctx, f, images, opts)
			diags = append(diags, d...)
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
	// What was decided for the config: how each event type was found.
	for _, line := range report {
		fmt.Fprintf(stdout, "  %s\n", line)
	}
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
