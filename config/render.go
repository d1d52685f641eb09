package config

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	wordwrap "github.com/mitchellh/go-wordwrap"

	"github.com/sluice-dev/sluice/internal/termsafe"
)

// MaxRenderedDiagnostics is how many diagnostics WriteDiagnostics renders;
// the rest are counted in one closing line ("and 7,950 more warnings").
// Errors are shown before warnings when there are more than this.
const MaxRenderedDiagnostics = 50

// renderer writes diagnostics in the text form of hcl's
// DiagnosticTextWriter (the golden files pin it), in time linear in the
// output: hcl's writer scans the whole file from its first byte, counting
// grapheme clusters, for every diagnostic, and walks every top-level block
// for the "in <block>" context, so 8,000 warnings about one large file took
// minutes. Here each file's lines and top-level blocks are indexed once and
// found by binary search.
//
// The "with <variable> as <value>" lines hcl's writer adds for expressions
// are not rendered: a config's evaluation context has functions only, no
// variables, so there is never a value to show.
type renderer struct {
	w       io.Writer
	files   map[string]*hcl.File
	width   uint
	color   bool
	indexes map[string]*fileIndex
}

// fileIndex locates lines and top-level blocks of one file by byte offset.
type fileIndex struct {
	src        []byte
	lineStarts []int   // byte offset of each line's first byte
	blocks     []block // top-level blocks in file order
}

type block struct {
	start, end int    // byte range of the whole block
	context    string // `source "gadget" "exec"`
}

func newRenderer(w io.Writer, files map[string]*hcl.File, width uint, color bool) *renderer {
	return &renderer{w: w, files: files, width: width, color: color, indexes: map[string]*fileIndex{}}
}

func (r *renderer) index(name string) *fileIndex {
	if ix, ok := r.indexes[name]; ok {
		return ix
	}
	f := r.files[name]
	var ix *fileIndex
	if f != nil && f.Bytes != nil {
		ix = &fileIndex{src: f.Bytes, lineStarts: []int{0}}
		for i, c := range f.Bytes {
			if c == '\n' {
				ix.lineStarts = append(ix.lineStarts, i+1)
			}
		}
		if body, ok := f.Body.(*hclsyntax.Body); ok {
			for _, b := range body.Blocks {
				rng := b.Range()
				ctx := b.Type
				for _, l := range b.Labels {
					ctx += " " + strconv.Quote(l)
				}
				ix.blocks = append(ix.blocks, block{start: rng.Start.Byte, end: rng.End.Byte, context: ctx})
			}
		}
	}
	r.indexes[name] = ix
	return ix
}

// context names the top-level block containing offset, as hcl's writer
// does ("" outside every block).
func (ix *fileIndex) context(offset int) string {
	i := sort.Search(len(ix.blocks), func(i int) bool { return ix.blocks[i].end > offset })
	if i < len(ix.blocks) && ix.blocks[i].start <= offset {
		return ix.blocks[i].context
	}
	return ""
}

// line returns the range of line i (0-based), without its line break.
func (ix *fileIndex) line(filename string, i int) hcl.Range {
	start := ix.lineStarts[i]
	end := len(ix.src)
	if i+1 < len(ix.lineStarts) {
		end = ix.lineStarts[i+1] - 1 // the '\n'
	}
	if end > start && ix.src[end-1] == '\r' {
		end--
	}
	return hcl.Range{
		Filename: filename,
		Start:    hcl.Pos{Line: i + 1, Byte: start},
		End:      hcl.Pos{Line: i + 1, Byte: end},
	}
}

func (r *renderer) write(d *hcl.Diagnostic) error {
	var colorCode, highlightCode, resetCode string
	if r.color {
		switch d.Severity {
		case hcl.DiagError:
			colorCode = "\x1b[31m"
		case hcl.DiagWarning:
			colorCode = "\x1b[33m"
		}
		resetCode = "\x1b[0m"
		highlightCode = "\x1b[1;4m"
	}
	severity := "???????"
	switch d.Severity {
	case hcl.DiagError:
		severity = "Error"
	case hcl.DiagWarning:
		severity = "Warning"
	}
	if s := d.Subject; s != nil {
		fmt.Fprintf(r.w, "%s:%d:%d: ", s.Filename, s.Start.Line, s.Start.Column)
	}
	fmt.Fprintf(r.w, "%s%s%s: %s\n\n", colorCode, severity, resetCode, termsafe.Lines(d.Summary))
	if d.Subject != nil {
		snip, highlight := *d.Subject, *d.Subject
		if d.Context != nil {
			snip = hcl.RangeOver(snip, *d.Context)
		}
		// An empty range cannot be shown: widen it to one character.
		if snip.Empty() {
			snip.End.Byte++
			snip.End.Column++
		}
		if highlight.Empty() {
			highlight.End.Byte++
			highlight.End.Column++
		}
		ix := r.index(d.Subject.Filename)
		if ix == nil {
			fmt.Fprintf(r.w, "  on %s line %d:\n  (source code not available)\n\n", d.Subject.Filename, d.Subject.Start.Line)
		} else {
			ctx := ix.context(d.Subject.Start.Byte)
			if ctx != "" {
				ctx = ", in " + ctx
			}
			fmt.Fprintf(r.w, "  on %s line %d%s:\n", d.Subject.Filename, d.Subject.Start.Line, ctx)
			// The first line that can overlap the snippet is the one
			// holding its start; lines past its end cannot.
			first := sort.SearchInts(ix.lineStarts, snip.Start.Byte+1) - 1
			for i := max(first, 0); i < len(ix.lineStarts) && ix.lineStarts[i] <= snip.End.Byte; i++ {
				line := ix.line(d.Subject.Filename, i)
				if !line.Overlaps(snip) {
					continue
				}
				before, hl, after := line.PartitionAround(highlight)
				if hl.Empty() {
					fmt.Fprintf(r.w, "%4d: %s\n", line.Start.Line, termsafe.Lines(string(clipEnd(line.SliceBytes(ix.src), maxSnippetLine))))
				} else {
					b, h, a := clipLine(before.SliceBytes(ix.src), hl.SliceBytes(ix.src), after.SliceBytes(ix.src))
					fmt.Fprintf(r.w, "%4d: %s%s%s%s%s\n", line.Start.Line,
						termsafe.Lines(string(b)), highlightCode, termsafe.Lines(string(h)), resetCode, termsafe.Lines(string(a)))
				}
			}
			io.WriteString(r.w, "\n")
		}
	}
	if d.Detail != "" {
		// Details quote values from the config, files and guests: escape
		// what would act on a terminal (the colors above are ours).
		detail := termsafe.Lines(d.Detail)
		if r.width != 0 {
			detail = wordwrap.WrapString(detail, r.width)
		}
		if _, err := fmt.Fprintf(r.w, "%s\n\n", detail); err != nil {
			return err
		}
	}
	return nil
}

// maxSnippetLine bounds a snippet line: a config line of megabytes (a
// generated one, or an attack) is shown around its highlight only.
const maxSnippetLine = 240

// clipLine shortens a line split around its highlight to about
// maxSnippetLine bytes, keeping the highlight's start in view.
func clipLine(before, hl, after []byte) ([]byte, []byte, []byte) {
	if len(before)+len(hl)+len(after) <= maxSnippetLine {
		return before, hl, after
	}
	hl = clipEnd(hl, maxSnippetLine/2)
	return clipStart(before, maxSnippetLine/4), hl, clipEnd(after, maxSnippetLine/4)
}

// clipEnd keeps the first n bytes of b (whole UTF-8 characters) and marks
// the cut.
func clipEnd(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return append(b[:n:n], "..."...)
}

// clipStart keeps the last n bytes of b and marks the cut.
func clipStart(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	i := len(b) - n
	for i < len(b) && !utf8.RuneStart(b[i]) {
		i++
	}
	return append([]byte("..."), b[i:]...)
}

// capDiagnostics returns the diagnostics to render: all of them when there
// are at most limit, else errors first (in their order), then warnings, up
// to limit; and the counts of those left out.
func capDiagnostics(diags hcl.Diagnostics, limit int) (shown hcl.Diagnostics, moreErrors, moreWarnings int) {
	if len(diags) <= limit {
		return diags, 0, 0
	}
	ordered := slices.Clone(diags)
	slices.SortStableFunc(ordered, func(a, b *hcl.Diagnostic) int {
		return rank(a) - rank(b)
	})
	for _, d := range ordered[limit:] {
		if d.Severity == hcl.DiagError {
			moreErrors++
		} else {
			moreWarnings++
		}
	}
	return ordered[:limit], moreErrors, moreWarnings
}

func rank(d *hcl.Diagnostic) int {
	if d.Severity == hcl.DiagError {
		return 0
	}
	return 1
}

// moreLine is the closing line for diagnostics left out.
func moreLine(moreErrors, moreWarnings int) string {
	count := func(n int, what string) string {
		if n == 1 {
			return "1 more " + what
		}
		return thousands(n) + " more " + what + "s"
	}
	switch {
	case moreErrors > 0 && moreWarnings > 0:
		return fmt.Sprintf("...and %s and %s, not shown.\n", count(moreErrors, "error"), count(moreWarnings, "warning"))
	case moreErrors > 0:
		return fmt.Sprintf("...and %s, not shown.\n", count(moreErrors, "error"))
	default:
		return fmt.Sprintf("...and %s, not shown.\n", count(moreWarnings, "warning"))
	}
}

// thousands formats n with commas: 7950 -> "7,950".
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
