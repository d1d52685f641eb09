// Command redact is a stage that masks secrets in event fields: values of
// string fields (and the elements of list fields such as trace_exec's args)
// that match a pattern, the argument after a secret-taking flag, and whole
// fields by name.
//
//	params = {
//	  fields   = ["args", "filename"]   # fields to scan (globs: "env.*"); default ["args"]
//	  patterns = ["(?i)--?(?:password|passwd|token|secret|api[-_]?key)=(\\S+)"]
//	  flags    = ["--password", "-p"]   # mask the list element after these
//	                                    # (default --password, --passwd, --token, --secret, --api-key)
//	  drop     = ["env.*"]              # fields to mask wholly (globs)
//	  mask     = "****"                 # the replacement (default "****")
//	}
//
// A pattern with a capturing group masks only what the first group
// matched (--password=****); without one it masks the whole match. The
// default patterns catch --password=, --token=, api keys, bearer tokens and
// AWS access keys. Events with nothing to mask pass on untouched.
package main

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/sluice-dev/sluice/sdk/go/sluice"
)

type params struct {
	Fields   []string `sluice:"fields"`
	Patterns []string `sluice:"patterns"`
	Flags    []string `sluice:"flags"`
	Drop     []string `sluice:"drop"`
	Mask     *string  `sluice:"mask"`
}

var defaultPatterns = []string{
	`(?i)--?(?:password|passwd|pass|pwd|token|secret|api[-_]?key|access[-_]?key|auth)[= ](\S+)`,
	`(?i)(?:authorization:\s*)?bearer\s+([A-Za-z0-9._~+/=-]{8,})`,
	`\b(AKIA[0-9A-Z]{16})\b`,
	`\b(gh[pousr]_[A-Za-z0-9]{36,})\b`,
	`://[^/\s:@]+:([^/\s@]+)@`, // credentials in URLs (no letters: no (?i), so the regexp can look for "://" first)
}

var (
	fields    = []string{"args"}
	patterns  []*regexp.Regexp
	pf        *prefilter // which patterns may match a string (prefilter.go): most need none
	globs     bool       // fields or drop hold glob patterns: walk every field
	flags     = map[string]bool{"--password": true, "--passwd": true, "--token": true, "--secret": true, "--api-key": true}
	flagLens  uint64    // bit n set when a flag is n bytes long (n < 64)
	flagFirst [256]bool // the first bytes of the flags
	drops     []string
	mask      = "****"
	masked    *sluice.Counter
)

func init() {
	masked = sluice.NewCounter("masked")
	sluice.OnInit(func(p sluice.Params) error {
		var cfg params
		if err := p.Decode(&cfg); err != nil {
			return err
		}
		if cfg.Fields != nil {
			fields = cfg.Fields
		}
		for i, f := range append(append([]string(nil), fields...), cfg.Drop...) {
			if _, err := path.Match(f, ""); err != nil {
				return fmt.Errorf("params: field pattern %d %q: %w", i, f, err)
			}
		}
		src := defaultPatterns
		if cfg.Patterns != nil {
			src = cfg.Patterns
		}
		for i, s := range src {
			re, err := regexp.Compile(s)
			if err != nil {
				return fmt.Errorf("params.patterns[%d]: %w", i, err)
			}
			patterns = append(patterns, re)
		}
		var err error
		if pf, err = newPrefilter(src); err != nil {
			return fmt.Errorf("params.patterns: %w", err)
		}
		if cfg.Flags != nil {
			flags = map[string]bool{}
			for _, f := range cfg.Flags {
				flags[f] = true
			}
		}
		flagLens, flagFirst = 0, [256]bool{}
		for f := range flags {
			flagLens |= 1 << min(len(f), 63)
			if f != "" {
				flagFirst[f[0]] = true
			}
		}
		drops = cfg.Drop
		for _, f := range append(append([]string(nil), fields...), drops...) {
			globs = globs || strings.ContainsAny(f, "*?[\\")
		}
		if cfg.Mask != nil {
			mask = *cfg.Mask
		}
		return nil
	})
	sluice.Map(redact)
}

// isFlag reports whether b is one of the flags: most arguments differ in
// length or first byte from every flag and need no map lookup.
func isFlag(b []byte) bool {
	return len(b) > 0 && flagFirst[b[0]] && flagLens&(1<<min(len(b), 63)) != 0 && flags[string(b)]
}

// mayMatch reports whether some pattern matches b, running only those the
// prefilter leaves.
func mayMatch(b []byte) bool {
	c := pf.candidates(b)
	if c == 0 {
		return false
	}
	for i, re := range patterns {
		if c&patternBit(i) != 0 && re.Match(b) {
			return true
		}
	}
	return false
}

func matchesAny(globs []string, name string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// maskString returns s with every pattern's secret replaced, and whether
// anything changed.
func maskString(s string) (string, bool) {
	c := pf.candidates([]byte(s))
	changed := false
	for i, re := range patterns {
		if c&patternBit(i) == 0 {
			continue
		}
		locs := re.FindAllStringSubmatchIndex(s, -1)
		if locs == nil {
			continue
		}
		var b strings.Builder
		last := 0
		for _, m := range locs {
			start, end := m[0], m[1]
			if len(m) >= 4 && m[2] >= 0 { // mask the first group only
				start, end = m[2], m[3]
			}
			b.WriteString(s[last:start])
			b.WriteString(mask)
			last = end
		}
		b.WriteString(s[last:])
		s, changed = b.String(), true
		c = pf.candidates([]byte(s)) // the mask may make a later pattern match
	}
	return s, changed
}

func redact(ev *sluice.Event) {
	if !globs {
		// Plain field names: look them up, no walk over the event.
		for _, name := range drops {
			if ev.Has(name) {
				ev.SetString(name, mask)
				masked.Inc()
			}
		}
		for _, name := range fields {
			redactField(ev, name)
		}
		return
	}
	var names []string
	ev.Each(func(key []byte, v sluice.Value) bool {
		names = append(names, string(key))
		return true
	})
	for _, name := range names {
		if matchesAny(drops, name) {
			ev.SetString(name, mask)
			masked.Inc()
		} else if matchesAny(fields, name) {
			redactField(ev, name)
		}
	}
}

// list is reused across events for the elements of list fields.
var list []string

func redactField(ev *sluice.Event, name string) {
	v := ev.Get(name)
	switch v.Type() {
	case sluice.TypeString:
		b, _ := v.StringBytes()
		if !mayMatch(b) {
			return
		}
		if out, ok := maskString(string(b)); ok {
			ev.SetString(name, out)
			masked.Inc()
		}
	case sluice.TypeArray:
		// Nothing to do, and nothing copied, unless a flag or a pattern hits.
		hit, prevFlag := false, false
		for it := v.Iter(); ; {
			el, ok := it.Next()
			if !ok {
				break
			}
			b, _ := el.StringBytes()
			if prevFlag || mayMatch(b) {
				hit = true
				break
			}
			prevFlag = isFlag(b)
		}
		if !hit {
			return
		}
		list = list[:0]
		for el := range v.Elems() {
			s, _ := el.Str()
			list = append(list, s)
		}
		changed := false
		for i := range list {
			if i > 0 && flags[list[i-1]] && list[i] != mask {
				list[i], changed = mask, true
				continue
			}
			if out, ok := maskString(list[i]); ok {
				list[i], changed = out, true
			}
		}
		if changed && len(list) == v.Len() {
			ev.SetStrings(name, list)
			masked.Inc()
		}
	}
}

func main() {}
