package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/sluice-dev/sluice/gadgets"
)

func cmdGadgets(stdout io.Writer) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDESCRIPTION")
	for _, b := range gadgets.Builtins() {
		fmt.Fprintf(tw, "%s\t%s\n", b.Name, b.Description)
	}
	return tw.Flush()
}
