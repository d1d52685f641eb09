// Command sluice is the sluice agent and its command-line tools.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// errUsage marks errors whose message is the usage text already printed.
var errUsage = errors.New("usage")

// exitError carries a specific exit status.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

const usage = `sluice: kernel security events, filtered, to a message bus.

Usage:
  sluice agent [--config FILE]            run the agent (default: the built-in config)
  sluice run GADGET [flags]               run one gadget straight to the terminal
  sluice config validate FILE             check a config file without running it
  sluice config default                   print the built-in default config
  sluice ctl status|reload|tap|top        steer a running agent (see "sluice ctl")
  sluice subscribe SUBJECT [--server URL]  print events published on NATS as JSON lines
  sluice gadgets                          list the built-in gadgets
  sluice image COMMAND                    build, push, pull, sign, verify gadget and stage images
  sluice version                          print the version

Run "sluice COMMAND -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		os.Exit(ee.code)
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "sluice:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "agent":
		return cmdAgent(ctx, args[1:], stdout, stderr)
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "config":
		return cmdConfig(ctx, args[1:], stdout, stderr)
	case "ctl":
		return cmdCtl(ctx, args[1:], stdout, stderr)
	case "subscribe":
		return cmdSubscribe(ctx, args[1:], stdout, stderr)
	case "gadgets":
		return cmdGadgets(stdout)
	case "image":
		return cmdImage(ctx, args[1:], os.Stdin, stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "sluice %s\n", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "sluice: unknown command %q\n\n%s", args[0], usage)
	return errUsage
}

// parseInterspersed parses flags that may come before or after positional
// arguments (`sluice run trace_open -o json`), returning the positionals.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}
