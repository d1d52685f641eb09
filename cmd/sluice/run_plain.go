package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/config"
)

// The options of `sluice run` for plain libbpf objects (no markers): the
// event type's file, which programs run, and rendering hints, the flag
// forms of a source's event_type_file, programs, skip_programs and fields.

type plainRunFlags struct {
	eventType     string
	eventTypeFile string
	mapName       string
	programs      []string
	skipPrograms  []string
	hints         []config.FieldHint
}

func (p *plainRunFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&p.eventType, "event-type", "", "the struct the output records hold, for gadgets without markers (found in the object's BTF, its DWARF, or --event-type-file)")
	fs.StringVar(&p.eventTypeFile, "event-type-file", "", "an object `FILE` (BTF or DWARF, such as a header compiled with clang -g) holding the event type the gadget's object lacks")
	fs.StringVar(&p.mapName, "map", "", "read only this output map")
	fs.StringSliceVar(&p.programs, "programs", nil, "load and attach only these programs (`NAMES`, comma-separated)")
	fs.StringSliceVar(&p.skipPrograms, "skip-programs", nil, "leave these programs out (`NAMES`, comma-separated), as libbpf loaders turn autoload off")
	fs.Var(hintValue{&p.hints}, "hint", "render a member of the event type: `MEMBER:KEY=VALUE,...` with as=strings (count=, size=), as=ip (family=), tag= and case.VALUE=ALTERNATIVE, rename=, member= (repeatable)")
	for _, name := range []string{"event-type", "event-type-file", "map", "programs", "skip-programs", "hint"} {
		cmd.RegisterFlagCompletionFunc(name, cobra.NoFileCompletions)
	}
	cmd.MarkFlagFilename("event-type-file", "o")
}

// apply sets the flags on the run's source.
func (p *plainRunFlags) apply(f *config.File) {
	src := f.Sources[0]
	src.EventType = p.eventType
	src.EventTypeFile = p.eventTypeFile
	src.Map = p.mapName
	src.Programs = p.programs
	src.SkipPrograms = p.skipPrograms
	src.Fields = p.hints
}

// hintValue is a repeatable --hint flag.
type hintValue struct{ hints *[]config.FieldHint }

func (h hintValue) Type() string { return "MEMBER:KEY=VALUE,..." }
func (h hintValue) String() string {
	if h.hints == nil {
		return ""
	}
	var parts []string
	for _, x := range *h.hints {
		parts = append(parts, x.Name)
	}
	return strings.Join(parts, " ")
}

func (h hintValue) Set(s string) error {
	hint, err := parseHint(s)
	if err != nil {
		return err
	}
	for _, have := range *h.hints {
		if have.Name == hint.Name {
			return fmt.Errorf("member %s is hinted twice", hint.Name)
		}
	}
	*h.hints = append(*h.hints, hint)
	return nil
}

// parseHint reads "args:as=strings,count=args_count" or
// "u:tag=kind,case.EXEC=exec,case.2=exit".
func parseHint(s string) (config.FieldHint, error) {
	name, opts, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.TrimSpace(opts) == "" {
		return config.FieldHint{}, fmt.Errorf("want MEMBER:KEY=VALUE,..., such as args:as=strings,count=args_count")
	}
	h := config.FieldHint{Name: name}
	for _, kv := range strings.Split(opts, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return h, fmt.Errorf("%q: want KEY=VALUE", kv)
		}
		switch {
		case k == "as":
			h.As = v
		case k == "count":
			h.Count = v
		case k == "size":
			h.Size = v
		case k == "family":
			h.Family = v
		case k == "tag":
			h.Tag = v
		case k == "rename":
			h.Rename = v
		case k == "member":
			h.Member = v
		case strings.HasPrefix(k, "case."):
			if h.Cases == nil {
				h.Cases = map[string]string{}
			}
			h.Cases[strings.TrimPrefix(k, "case.")] = v
		default:
			return h, fmt.Errorf("unknown key %q; keys are as, count, size, family, tag, case.VALUE, rename, member", k)
		}
	}
	return h, h.Check()
}
