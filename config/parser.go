package config

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Parser parses config files and keeps their sources, so that diagnostics
// about them (its own, and later ones the agent reports against the ranges
// in a File) can be rendered with snippets.
//
// A Parser is not safe for concurrent use.
type Parser struct {
	files map[string]*hcl.File
}

// NewParser returns a Parser that holds no files yet.
func NewParser() *Parser {
	return &Parser{files: map[string]*hcl.File{}}
}

// ParseFile reads and decodes the config file at path. Relative paths given
// to file() in the config are taken from path's directory.
func (p *Parser) ParseFile(path string) (*File, hcl.Diagnostics) {
	src, err := readRegularFile(path, MaxConfigBytes, "config file")
	if err != nil {
		return &File{}, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Failed to read config file",
			Detail:   fmt.Sprintf("Cannot read %s: %s.", path, err),
		}}
	}
	return p.ParseSource(path, src)
}

// ParseSource decodes src as the config file named filename. The name is
// used in diagnostics and as the base for file() paths; parsing a second
// source under the same name replaces the first in the Parser.
//
// The returned File is never nil. When the diagnostics hold errors it is
// partial and must not be used to run an agent.
func (p *Parser) ParseSource(filename string, src []byte) (*File, hcl.Diagnostics) {
	if diags := checkNesting(src, filename); diags.HasErrors() {
		// The snippet needs the source, but not a parse of it.
		p.files[filename] = &hcl.File{Bytes: src}
		return &File{}, diags
	}
	hf, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	p.files[filename] = hf
	if diags.HasErrors() {
		// A body that failed to parse would yield cascades of misleading
		// "missing" errors; the syntax error is the one to fix first.
		return &File{}, diags
	}
	f, ds := decodeBody(filename, hf.Body, newEvalContext(filepath.Dir(filename)))
	return f, append(diags, ds...)
}

// DefaultFilename is the name the built-in default config has in diagnostics.
const DefaultFilename = "<default>"

// ParseDefault decodes the built-in Default config.
func (p *Parser) ParseDefault() (*File, hcl.Diagnostics) {
	return p.ParseSource(DefaultFilename, []byte(Default))
}

// WriteDiagnostics renders diags with source snippets for the files this
// Parser has parsed. Each diagnostic with a subject starts with its
// file:line:column, the form editors and terminals turn into a link, and
// which tells apart several subjects on one line (the snippet only shows the
// line). With color (for a terminal) text is wrapped at 100 columns; without
// it lines are not wrapped, which suits logs and files.
//
// At most MaxRenderedDiagnostics are rendered (errors first when there are
// more), and a last line counts the others; rendering takes time linear in
// what it writes (render.go).
func (p *Parser) WriteDiagnostics(w io.Writer, diags hcl.Diagnostics, color bool) error {
	var width uint
	if color {
		width = 100
	}
	shown, moreErrors, moreWarnings := capDiagnostics(diags, MaxRenderedDiagnostics)
	bw := bufio.NewWriter(w)
	r := newRenderer(bw, p.files, width, color)
	for _, d := range shown {
		if err := r.write(d); err != nil {
			return fmt.Errorf("write config diagnostics: %w", err)
		}
	}
	if moreErrors+moreWarnings > 0 {
		io.WriteString(bw, moreLine(moreErrors, moreWarnings))
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write config diagnostics: %w", err)
	}
	return nil
}

// Parse decodes src as the config file named filename with a fresh Parser.
// Use a Parser instead to render the diagnostics with snippets.
func Parse(filename string, src []byte) (*File, hcl.Diagnostics) {
	return NewParser().ParseSource(filename, src)
}

// ParseDefault decodes the built-in Default config with a fresh Parser.
func ParseDefault() (*File, hcl.Diagnostics) {
	return NewParser().ParseDefault()
}
