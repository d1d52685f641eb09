package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// newRootCommand builds the whole command tree. Help, shell completion and
// man pages are all generated from it, so a command or flag added here is
// documented everywhere at once.
func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "sluice",
		Short: "Kernel security events, filtered, to a message bus",
		Long: `sluice turns kernel eBPF programs into a reliable, filterable stream of security
events: eBPF gadget sources, bounded ring-buffer readers, Wasm stages, and sinks
(NATS core or JetStream, files, stdout), configured in HCL.`,
		Example: `  sluice agent                                   # the built-in config: built-in gadgets, a local NATS
  sluice agent --config /etc/sluice/sluice.hcl
  sluice run trace_exec -o json --timeout 10s    # one gadget straight to the terminal
  sluice subscribe 'sluice.events.>' --last 20   # watch the bus, starting with the last 20 events
  sluice config validate sluice.hcl`,
		Version:       currentBuild().Version,
		Args:          subcommandArgs,
		RunE:          showHelp,
		SilenceErrors: true, // run prints errors, once
		SilenceUsage:  true, // a failure is not a usage mistake; usage mistakes point at --help
	}
	// One flag error function for every command: cobra asks the parents.
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{command: cmd.CommandPath(), err: err}
	})
	root.SetVersionTemplate("{{.Name}} {{.Version}}\n")
	root.AddGroup(
		&cobra.Group{ID: "run", Title: "Running:"},
		&cobra.Group{ID: "tools", Title: "Tools:"},
	)
	for _, c := range []*cobra.Command{newAgentCommand(), newRunCommand(), newSubscribeCommand(), newCtlCommand(), newRolloutCommand()} {
		c.GroupID = "run"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{newConfigCommand(), newGadgetsCommand(), newImageCommand(), newVersionCommand()} {
		c.GroupID = "tools"
		root.AddCommand(c)
	}
	root.AddCommand(newManCommand())
	root.SetHelpCommandGroupID("tools")
	root.SetCompletionCommandGroupID("tools")
	// cobra adds its completion command when it executes; added now, it
	// can refuse an unknown shell like every other group refuses an
	// unknown command (cobra's would print its help and exit 0).
	root.InitDefaultCompletionCmd()
	if c, _, err := root.Find([]string{"completion"}); err == nil && c != root {
		c.Args, c.RunE = subcommandArgs, showHelp
		c.Example = `  source <(sluice completion bash)                          # this shell
  sluice completion bash > /etc/bash_completion.d/sluice    # every bash
  sluice completion zsh > "${fpath[1]}/_sluice"
  sluice completion fish > ~/.config/fish/completions/sluice.fish`
	}
	return root
}

// showHelp is the action of a command that only groups others: called
// alone, it prints its help (to stdout, exit 0).
func showHelp(cmd *cobra.Command, _ []string) error { return cmd.Help() }

// subcommandArgs refuses arguments to a command that only groups others:
// they are an unknown subcommand.
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default, which only its own lookup sets
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + orList(s) + "?"
	}
	return &usageError{command: cmd.CommandPath(), err: errors.New(msg)}
}

// exactArgs wants exactly the named positional arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < len(names):
			return usageErrorf(cmd, "missing %s", strings.Join(names[len(args):], " "))
		case len(args) > len(names):
			return usageErrorf(cmd, "unexpected argument %q", args[len(names)])
		}
		return nil
	}
}

// minArgs wants at least one argument, called name.
func minArgs(name string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return usageErrorf(cmd, "missing %s", name)
		}
		return nil
	}
}

// noArgs refuses positional arguments to a command that takes none.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf(cmd, "unexpected argument %q", args[0])
	}
	return nil
}

// requireFlags fails like a usage mistake when a required flag is unset;
// cobra's MarkFlagRequired would say so too, but not the same way as the
// rest.
func requireFlags(cmd *cobra.Command, names ...string) error {
	for _, n := range names {
		if !cmd.Flags().Changed(n) {
			return usageErrorf(cmd, "missing --%s", n)
		}
	}
	return nil
}

// exclusiveFlags fails when more than one of the named flags is set.
func exclusiveFlags(cmd *cobra.Command, names ...string) error {
	var set []string
	for _, n := range names {
		if cmd.Flags().Changed(n) {
			set = append(set, "--"+n)
		}
	}
	if len(set) > 1 {
		return usageErrorf(cmd, "%s exclude each other", strings.Join(set, " and "))
	}
	return nil
}

// flagsTogether fails when some but not all of the named flags are set.
func flagsTogether(cmd *cobra.Command, names ...string) error {
	var set, unset []string
	for _, n := range names {
		if cmd.Flags().Changed(n) {
			set = append(set, "--"+n)
		} else {
			unset = append(unset, "--"+n)
		}
	}
	if len(set) > 0 && len(unset) > 0 {
		return usageErrorf(cmd, "%s needs %s", strings.Join(set, " and "), strings.Join(unset, " and "))
	}
	return nil
}
