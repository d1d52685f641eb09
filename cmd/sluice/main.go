// Command sluice is the sluice agent and its command-line tools.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError carries a specific exit status; whatever the error has to say
// was printed already (diagnostics, say).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// usageError is a mistake in how a command was called: an unknown command
// or flag, a bad flag value, a missing argument. It exits 2 and points at
// the command's help.
type usageError struct {
	command string // "sluice image push"
	err     error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(cmd *cobra.Command, format string, args ...any) error {
	return &usageError{command: cmd.CommandPath(), err: fmt.Errorf(format, args...)}
}

// helpFailure lets a help function, which cannot return an error (`sluice
// run GADGET --help` loads the gadget), fail the command: run puts one in
// the context and looks at it after the command.
type helpFailure struct{ err error }

type helpFailureKey struct{}

// failHelp records err as the failure of the help shown in ctx's command.
func failHelp(ctx context.Context, err error) {
	if hf, ok := ctx.Value(helpFailureKey{}).(*helpFailure); ok && hf.err == nil {
		hf.err = err
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	// The first signal asks for a clean stop; a second one kills, should
	// the clean stop hang.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns its exit status: 0, 1 for a
// failure, 2 for a usage mistake. It prints each error exactly once.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	hf := &helpFailure{}
	err := root.ExecuteContext(context.WithValue(ctx, helpFailureKey{}, hf))
	if err == nil {
		err = hf.err
	}
	var ee exitError
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "sluice: %v\nRun '%s --help' for usage.\n", ue.err, ue.command)
		return 2
	}
	fmt.Fprintln(stderr, "sluice:", err)
	return 1
}
