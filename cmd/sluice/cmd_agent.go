package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/agent"
	"github.com/sluice-dev/sluice/config"
)

func newAgentCommand() *cobra.Command {
	var configPath, logLevel string
	var images imageRunFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the agent",
		Long: `Run the agent on a config file, or on the built-in config (see 'sluice config
default'): the built-in gadgets into the terminal and into a NATS server the
agent runs itself. It stops on SIGINT or SIGTERM: it detaches its programs,
drains its queues, flushes its sinks and exits 0.

Loading eBPF needs root, or CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH
(docs/operations.md, "Privileges").`,
		Example: `  sluice agent
  sluice agent --config /etc/sluice/sluice.hcl
  sluice agent -c sluice.hcl --log-level debug --pull always`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			f, p, err := loadConfig(configPath, stderr)
			if err != nil {
				return err
			}
			if logLevel != "" {
				f.Agent.LogLevel = logLevel
			}
			return runAgent(cmd.Context(), f, p, stdout, stderr, false, images.fetchOptions(stderr))
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&configPath, "config", "c", "", "config `file` (default: the built-in config, see 'sluice config default')")
	enumVarP(cmd, fs, &logLevel, "log-level", "", "", logLevels, "override the config's log level")
	images.register(cmd)
	cmd.MarkFlagFilename("config", "hcl")
	return cmd
}

// runAgent builds and runs an agent until ctx is cancelled.
// With stats, it prints the event totals to stderr when it stops.
func runAgent(ctx context.Context, f *config.File, p *config.Parser, stdout, stderr io.Writer, stats bool, fetch agent.FetchOptions) error {
	log, err := newLogger(stderr, f.Agent.LogLevel, f.Agent.LogFormat)
	if err != nil {
		return err
	}
	build := currentBuild()
	images, diags := agent.FetchImages(ctx, f, fetch)
	if diags.HasErrors() {
		p.WriteDiagnostics(stderr, diags, isTerminal(stderr))
		return exitError{code: 1}
	}
	a, diags := agent.New(f, agent.Options{Logger: log, Stdout: stdout, Images: images, Build: agent.BuildInfo{Version: build.Version, Commit: build.Commit}})
	if len(diags) > 0 {
		p.WriteDiagnostics(stderr, diags, isTerminal(stderr))
	}
	if diags.HasErrors() {
		return exitError{code: 1}
	}
	log.Info("sluice agent starting", "version", build.Version, "name", f.Agent.Name, "pipelines", len(f.Pipelines))
	err = a.Run(ctx)
	summary := a.Summary()
	if stats {
		fmt.Fprintln(stderr, "sluice:", summary)
	}
	if err != nil {
		return err
	}
	log.Info("sluice agent stopped", "summary", summary.String())
	return nil
}
