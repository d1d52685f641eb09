package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/gadgets"
)

func newGadgetsCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "gadgets",
		Short:   "List the built-in gadgets",
		Example: "  sluice gadgets\n  sluice run trace_open -o json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listGadgets(cmd.OutOrStdout())
		},
	}
}

func listGadgets(stdout io.Writer) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDESCRIPTION")
	for _, b := range gadgets.Builtins() {
		fmt.Fprintf(tw, "%s\t%s\n", b.Name, b.Description)
	}
	return tw.Flush()
}
