package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluice-dev/sluice/config"
)

// durationValue is a time.Duration flag whose error for a bare number
// ("--timeout 1") says which unit was probably meant, where pflag's says
// only "missing unit in duration".
type durationValue struct{ d *time.Duration }

var _ pflag.Value = durationValue{}

func durationVar(fs *pflag.FlagSet, d *time.Duration, name string, value time.Duration, usage string) {
	*d = value
	fs.Var(durationValue{d}, name, usage)
}

func (v durationValue) String() string {
	if *v.d == 0 {
		return "0" // what pflag takes for an unset default, and leaves out of the help
	}
	return v.d.String()
}
func (v durationValue) Type() string { return "duration" }
func (v durationValue) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	*v.d = d
	return nil
}

// parseDuration parses a Go duration ("1m30s"); its error for a number
// without a unit suggests seconds, the unit people mean most often.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err == nil {
		return d, nil
	}
	if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
		return 0, fmt.Errorf("missing unit in duration %q: did you mean %ss?", s, s)
	}
	return 0, fmt.Errorf("invalid duration %q: want a number with a unit (ms, s, m, h), such as 10s or 1m30s", s)
}

// enumValue is a string flag that takes one of a closed set of values:
// a wrong one fails while the flags are parsed, help shows the choices, and
// shell completion offers them.
type enumValue struct {
	v       *string
	allowed []string
}

func (e enumValue) String() string { return *e.v }
func (e enumValue) Type() string   { return strings.Join(e.allowed, "|") }
func (e enumValue) Set(s string) error {
	if !slices.Contains(e.allowed, s) {
		return fmt.Errorf("want %s", orList(e.allowed))
	}
	*e.v = s
	return nil
}

// enumVarP defines an enum flag with an optional shorthand and registers
// its completion on cmd.
func enumVarP(cmd *cobra.Command, fs *pflag.FlagSet, p *string, name, shorthand, value string, allowed []string, usage string) {
	*p = value
	fs.VarP(enumValue{p, allowed}, name, shorthand, usage)
	if err := cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(allowed, cobra.ShellCompDirectiveNoFileComp)); err != nil {
		panic(err) // a programming error: the flag is registered twice
	}
}

func orList(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// paramValue collects repeated --param NAME=VALUE flags in order.
type paramValue struct{ p *[]config.Param }

func (p paramValue) Type() string { return "NAME=VALUE" }
func (p paramValue) String() string {
	if len(*p.p) == 0 {
		return ""
	}
	parts := make([]string, len(*p.p))
	for i, kv := range *p.p {
		parts[i] = kv.Name + "=" + kv.Value
	}
	return "[" + strings.Join(parts, ",") + "]"
}
func (p paramValue) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", v)
	}
	*p.p = append(*p.p, config.Param{Name: k, Value: val})
	return nil
}

// The closed sets of values that flags share with the config.
var (
	logLevels    = config.LogLevels()
	pullPolicies = config.PullPolicies()
	whenFull     = config.WhenFullPolicies()
)
