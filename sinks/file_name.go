package sinks

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// FilePattern is a file sink's path: a directory and a file name that may
// hold strftime-like time verbs (%Y year, %m month, %d day, %H hour, %M
// minute, %S second, %j day of the year, %% a percent sign), rendered in
// UTC. Directories take no verbs, so that retention has one directory to
// look after.
type FilePattern struct {
	dir        string
	stem, ext  string // the name's template, split at its last dot
	timed      bool
	path       string // the rendered path when the name has no time verbs
	rotatedRE  *regexp.Regexp
	rotatedFmt string // time layout inserted into rotated names
}

// timeVerbs maps each verb to its width in digits.
var timeVerbs = map[byte]int{'Y': 4, 'm': 2, 'd': 2, 'H': 2, 'M': 2, 'S': 2, 'j': 3}

// ParseFilePattern checks a path template.
func ParseFilePattern(path string) (*FilePattern, error) {
	if path == "" {
		return nil, fmt.Errorf("file path is empty")
	}
	dir, name := filepath.Split(path)
	if strings.Contains(dir, "%") {
		return nil, fmt.Errorf("path %q: time patterns are allowed in the file name only, not in directories", path)
	}
	if name == "" || name == "." || name == ".." {
		return nil, fmt.Errorf("path %q names a directory, not a file", path)
	}
	p := &FilePattern{dir: filepath.Clean(dir), rotatedFmt: "20060102T150405.000Z"}
	if dir == "" {
		p.dir = "."
	}
	// Split at the last dot outside a verb, so "events-%Y.jsonl" keeps
	// ".jsonl" as its extension.
	p.stem, p.ext = name, ""
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		p.stem, p.ext = name[:i], name[i:]
	}
	var re strings.Builder
	re.WriteString("^")
	for _, part := range []string{p.stem, p.ext} {
		for i := 0; i < len(part); i++ {
			c := part[i]
			if c != '%' {
				re.WriteString(regexp.QuoteMeta(string(c)))
				continue
			}
			if i+1 >= len(part) {
				return nil, fmt.Errorf("path %q: a %% at the end of the name (write %%%% for a percent sign)", path)
			}
			i++
			if part[i] == '%' {
				re.WriteString("%")
				continue
			}
			width, ok := timeVerbs[part[i]]
			if !ok {
				return nil, fmt.Errorf("path %q: unknown time verb %%%c (use %%Y %%m %%d %%H %%M %%S %%j, or %%%% for a percent sign)", path, part[i])
			}
			p.timed = true
			fmt.Fprintf(&re, `\d{%d}`, width)
		}
		if part == p.stem {
			// Rotated names of this version end in -NNN; older versions
			// wrote no suffix or -N, and retention still owns those.
			re.WriteString(`(\.\d{8}T\d{6}\.\d{3}Z(-\d+)?)?`)
		}
	}
	re.WriteString(`(\.gz)?$`)
	p.rotatedRE = regexp.MustCompile(re.String())
	if !p.timed {
		// The sink asks for the path with every batch.
		p.path = filepath.Join(p.dir, p.Name(time.Time{}))
	}
	return p, nil
}

// Dir is the directory the files live in.
func (p *FilePattern) Dir() string { return p.dir }

// Timed reports whether the name holds time verbs.
func (p *FilePattern) Timed() bool { return p.timed }

// Name renders the file name for t (UTC).
func (p *FilePattern) Name(t time.Time) string {
	return p.render(p.stem, t) + p.render(p.ext, t)
}

// Path renders the full path for t.
func (p *FilePattern) Path(t time.Time) string {
	if !p.timed {
		return p.path
	}
	return filepath.Join(p.dir, p.Name(t))
}

func (p *FilePattern) render(tmpl string, t time.Time) string {
	if !strings.Contains(tmpl, "%") {
		return tmpl
	}
	t = t.UTC()
	var b []byte
	for i := 0; i < len(tmpl); i++ {
		c := tmpl[i]
		if c != '%' || i+1 >= len(tmpl) {
			b = append(b, c)
			continue
		}
		i++
		var v int
		switch tmpl[i] {
		case 'Y':
			v = t.Year()
		case 'm':
			v = int(t.Month())
		case 'd':
			v = t.Day()
		case 'H':
			v = t.Hour()
		case 'M':
			v = t.Minute()
		case 'S':
			v = t.Second()
		case 'j':
			v = t.YearDay()
		default:
			b = append(b, tmpl[i]) // %%
			continue
		}
		s := strconv.Itoa(v)
		for n := len(s); n < timeVerbs[tmpl[i]]; n++ {
			b = append(b, '0')
		}
		b = append(b, s...)
	}
	return string(b)
}

// RotatedName is the name the active file gets when it is rotated by size
// or age at t: the rotation time (UTC, to the millisecond) and a fixed-width
// tie-breaker n (0 to MaxRotationsPerMilli-1) inserted before the extension.
// Both parts have fixed widths, so the names of one active file sort in the
// order they were rotated, however many rotations fall in one millisecond
// ("…123Z-000" < "…123Z-001" < "…124Z-000"). The caller keeps t from going
// backwards and n rising within a millisecond (File.renameLocked does).
func (p *FilePattern) RotatedName(active string, t time.Time, n int) string {
	// Verbs render at fixed widths, so the extension's length is fixed.
	extLen := min(len(p.render(p.ext, t)), len(active))
	stem, ext := active[:len(active)-extLen], active[len(active)-extLen:]
	b := make([]byte, 0, len(active)+len(".20060102T150405.000Z-000"))
	b = append(b, stem...)
	b = append(b, '.')
	b = t.UTC().AppendFormat(b, p.rotatedFmt)
	b = append(b, '-', byte('0'+n/100%10), byte('0'+n/10%10), byte('0'+n%10))
	return string(append(b, ext...))
}

// MaxRotationsPerMilli bounds the rotations of one file within one
// millisecond: the tie-breaker in rotated names has three digits.
const MaxRotationsPerMilli = 1000

// Owns reports whether a file name in Dir is one of the sink's: an active
// name of some time, a rotated one, or either gzipped.
func (p *FilePattern) Owns(name string) bool { return p.rotatedRE.MatchString(name) }
