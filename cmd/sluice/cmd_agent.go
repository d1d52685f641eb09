package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/agent"
	"github.com/sluice-dev/sluice/config"
)

// agentHUP receives SIGHUP for `sluice agent`, which reloads the config.
// It is registered before main runs, so that a SIGHUP during start-up (a
// service manager's reload, a terminal closing) does not take its default
// action and terminate the agent; other commands keep the default.
var agentHUP chan os.Signal

func init() {
	if len(os.Args) > 1 && os.Args[1] == "agent" {
		agentHUP = make(chan os.Signal, 1)
		signal.Notify(agentHUP, syscall.SIGHUP)
	}
}

func newAgentCommand() *cobra.Command {
	var configPath, logLevel, pprofListen string
	var includeSelf bool
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
			hup := agentHUP
			if hup == nil { // run in-process (tests): register now
				hup = make(chan os.Signal, 1)
				signal.Notify(hup, syscall.SIGHUP)
				defer signal.Stop(hup)
			}
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			f, p, err := loadConfig(configPath, stderr)
			if err != nil {
				return err
			}
			if logLevel != "" {
				f.Agent.LogLevel = logLevel
			}
			fetch := images.fetchOptions(stderr)
			load := agent.LoadFile(configPath, fetch)
			if includeSelf {
				f.Agent.FilterSelf = false
				load = includeSelfOnReload(load)
			}
			return runAgent(cmd.Context(), f, p, stdout, stderr, runOptions{fetch: fetch, load: load, hup: hup, pprof: pprofListen})
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&configPath, "config", "c", "", "config `file` (default: the built-in config, see 'sluice config default')")
	enumVarP(cmd, fs, &logLevel, "log-level", "", "", logLevels, "override the config's log level")
	fs.BoolVar(&includeSelf, "include-self", false, "keep the events of the agent's own process (the config's filter_self = false), also across reloads")
	fs.StringVar(&pprofListen, "pprof-listen", "", "serve Go's profiles (net/http/pprof, /debug/pprof/) on this `address`, e.g. 127.0.0.1:6060; they show event data, keep it on loopback")
	images.register(cmd)
	cmd.MarkFlagFilename("config", "hcl")
	return cmd
}

// includeSelfOnReload keeps --include-self for the configs a reload reads.
func includeSelfOnReload(load agent.LoadFunc) agent.LoadFunc {
	return func(ctx context.Context) (agent.Loaded, hcl.Diagnostics) {
		l, diags := load(ctx)
		if l.File != nil {
			l.File.Agent.FilterSelf = false
		}
		return l, diags
	}
}

// runOptions are what distinguishes `sluice agent` from `sluice run`.
type runOptions struct {
	stats bool // print the event totals to stderr when the agent stops
	fetch agent.FetchOptions
	// load reads the config again for a reload, triggered by hup (and
	// the control API); nil: the agent cannot reload.
	load agent.LoadFunc
	hup  <-chan os.Signal
	// pprof is the address of the profiling endpoint; "" serves none.
	pprof string
}

// runAgent builds and runs an agent until ctx is cancelled.
func runAgent(ctx context.Context, f *config.File, p *config.Parser, stdout, stderr io.Writer, ro runOptions) error {
	// The collector's pace and the Ps from the start (agent { gc_percent,
	// max_procs }, see config.DefaultGCPercent); the memory limit waits for
	// the end of start-up (agent.applyMemorySettings).
	agent.SetGCPercent(f.Agent.GCPercent)
	agent.SetMaxProcs(f.Agent.MaxProcs)
	log, err := newLogger(stderr, f.Agent.LogLevel, f.Agent.LogFormat)
	if err != nil {
		return err
	}
	build := currentBuild()
	images, diags := agent.FetchImages(ctx, f, ro.fetch)
	if diags.HasErrors() {
		p.WriteDiagnostics(stderr, diags, isTerminal(stderr))
		return exitError{code: 1}
	}
	a, diags := agent.New(f, agent.Options{Logger: log, Stdout: stdout, Images: images, Version: build.Version, Commit: build.Commit, Load: ro.load})
	if len(diags) > 0 {
		p.WriteDiagnostics(stderr, diags, isTerminal(stderr))
	}
	if diags.HasErrors() {
		return exitError{code: 1}
	}
	log.Info("sluice agent starting", "version", build.Version, "name", f.Agent.Name, "pipelines", len(f.Pipelines))
	if ro.pprof != "" {
		stop, err := servePprof(ro.pprof, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	// SIGHUP reloads, one at a time; this goroutine is runAgent's and
	// ends with it.
	reloadCtx, stopReloads := context.WithCancel(ctx)
	reloads := make(chan struct{})
	go func() {
		defer close(reloads)
		for {
			select {
			case <-reloadCtx.Done():
				return
			case <-ro.hup:
				log.Info("SIGHUP: reloading the config")
				if _, err := a.Reload(reloadCtx); err != nil && reloadCtx.Err() == nil {
					log.Error("reload", "error", err)
				}
			}
		}
	}()
	err = a.Run(ctx)
	stopReloads()
	<-reloads
	summary := a.Summary()
	if ro.stats {
		fmt.Fprintln(stderr, "sluice:", summary)
	}
	if err != nil {
		return err
	}
	log.Info("sluice agent stopped", "summary", summary.String())
	return nil
}
