package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

func TestParseReference(t *testing.T) {
	tests := []struct {
		in      string
		want    Reference
		wantErr bool
	}{
		{in: "source.gadget.exec", want: Reference{Kind: "source", Type: "gadget", Name: "exec"}},
		{in: "sink.stdout.console", want: Reference{Kind: "sink", Type: "stdout", Name: "console"}},
		{in: "stage.wasm.no_shells", want: Reference{Kind: "stage", Type: "wasm", Name: "no_shells"}},
		{in: "source.gadget.my-exec", want: Reference{Kind: "source", Type: "gadget", Name: "my-exec"}},
		{in: "source.gadget", wantErr: true},
		{in: "source.gadget.exec.extra", wantErr: true},
		{in: "pipe.gadget.exec", wantErr: true},
		{in: "source.gadget.1exec", wantErr: true},
		{in: "source..exec", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseReference(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseReference(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseReference(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseReference(%q) (-want +got):\n%s", tt.in, diff)
			}
			if got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

// TestDecodeReference covers expression forms, including ones the golden
// files do not (a template with interpolation, a function call).
func TestDecodeReference(t *testing.T) {
	tests := []struct {
		expr        string
		kind        string
		want        Reference
		wantSummary string
	}{
		{expr: "source.gadget.exec", kind: KindSource, want: Reference{Kind: "source", Type: "gadget", Name: "exec"}},
		{expr: "sink.stdout.console", kind: KindSink, want: Reference{Kind: "sink", Type: "stdout", Name: "console"}},
		{expr: "stage.wasm.x", kind: KindStage, want: Reference{Kind: "stage", Type: "wasm", Name: "x"}},
		{expr: `"source.gadget.exec"`, kind: KindSource, wantSummary: "Reference given as a string"},
		{expr: `"exec"`, kind: KindSource, wantSummary: "Invalid reference"},
		{expr: `"${lower("A")}"`, kind: KindSource, wantSummary: "Invalid reference"},
		{expr: `lower("source.gadget.exec")`, kind: KindSource, wantSummary: "Invalid reference"},
		{expr: "stage.wasm.x", kind: KindSource, wantSummary: "Wrong kind of reference"},
		{expr: "source.gadget", kind: KindSource, wantSummary: "Invalid reference"},
		{expr: "source.gadget[0]", kind: KindSource, wantSummary: "Invalid reference"},
		{expr: "pipeline.gadget.exec", kind: KindSource, wantSummary: "Invalid reference"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			e, diags := hclsyntax.ParseExpression([]byte(tt.expr), "ref.hcl", hcl.InitialPos)
			if diags.HasErrors() {
				t.Fatalf("parse expression: %v", diags)
			}
			got, diags := decodeReference(e, "refs", tt.kind)
			if tt.wantSummary != "" {
				if len(diags) != 1 || diags[0].Summary != tt.wantSummary || diags[0].Subject == nil {
					t.Fatalf("diagnostics = %v, want one %q with a subject", diags, tt.wantSummary)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatalf("unexpected diagnostics: %v", diags)
			}
			if diff := cmp.Diff(tt.want, got, ignoreRanges); diff != "" {
				t.Errorf("reference (-want +got):\n%s", diff)
			}
			if got.Range != e.Range() {
				t.Errorf("Range = %v, want the expression's %v", got.Range, e.Range())
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	tests := []struct {
		s          string
		candidates []string
		want       string
	}{
		{"drop_old", []string{"block", "drop_newest", "drop_oldest"}, ""}, // three edits: not a typo
		{"drop_olest", []string{"block", "drop_newest", "drop_oldest"}, "drop_oldest"},
		{"jsno", []string{"text", "json"}, "json"},
		{"yaml", []string{"json", "table"}, ""},
		{"stdot", []string{"stdout"}, "stdout"},
		{"x", nil, ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.s, tt.candidates); got != tt.want {
			t.Errorf("suggest(%q, %q) = %q, want %q", tt.s, tt.candidates, got, tt.want)
		}
	}
}
