package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/sluice-dev/sluice/agent"
	"github.com/sluice-dev/sluice/config"
)

func cmdAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config `file` (default: the built-in config, see 'sluice config default')")
	logLevel := fs.String("log-level", "", "override the config's log level (debug, info, warn, error)")
	includeSelf := fs.Bool("include-self", false, "keep the events of the agent's own process (the config's filter_self = false)")
	var images imageRunFlags
	images.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("agent: unexpected argument %q", fs.Arg(0))
	}
	f, p, err := loadConfig(*configPath, stderr)
	if err != nil {
		return err
	}
	if *logLevel != "" {
		f.Agent.LogLevel = *logLevel
	}
	if *includeSelf {
		f.Agent.FilterSelf = false
	}
	return runAgent(ctx, f, p, stdout, stderr, false, images.fetchOptions(stderr))
}

// runAgent builds and runs an agent until ctx is cancelled.
// With stats, it prints the event totals to stderr when it stops.
func runAgent(ctx context.Context, f *config.File, p *config.Parser, stdout, stderr io.Writer, stats bool, fetch agent.FetchOptions) error {
	log, err := newLogger(stderr, f.Agent.LogLevel, f.Agent.LogFormat)
	if err != nil {
		return err
	}
	images, diags := agent.FetchImages(ctx, f, fetch)
	if diags.HasErrors() {
		p.WriteDiagnostics(stderr, diags, isTerminal(stderr))
		return exitError{code: 1}
	}
	a, diags := agent.New(f, agent.Options{Logger: log, Stdout: stdout, Images: images})
	if len(diags) > 0 {
		p.WriteDiagnostics(stderr, diags, isTerminal(stderr))
	}
	if diags.HasErrors() {
		return exitError{code: 1}
	}
	log.Info("sluice agent starting", "version", version, "name", f.Agent.Name, "pipelines", len(f.Pipelines))
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
