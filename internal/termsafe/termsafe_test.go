package termsafe_test

import (
	"testing"

	"github.com/sluice-dev/sluice/internal/termsafe"
)

func TestString(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain /usr/bin/curl", "plain /usr/bin/curl"},
		{`C:\path\with\backslashes`, `C:\path\with\backslashes`},
		{"Grüße, 世界", "Grüße, 世界"},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"\x1b]0;owned\x07", `\x1b]0;owned\x07`},
		{"two\nlines\r\tx", `two\nlines\r\tx`},
		{"del\x7f", `del\x7f`},
		{"c1 \u009b31m", `c1 \u009b31m`},
		{"bidi \u202egnp.exe", `bidi \u202egnp.exe`},
		{"zero\u200bwidth", `zero\u200bwidth`},
		{"line\u2028sep", `line\u2028sep`},
		{"bad \xff\xfe utf8", `bad \xff\xfe utf8`},
		{"nul\x00", `nul\x00`},
	} {
		if got := termsafe.String(c.in); got != c.want {
			t.Errorf("String(%q) = %q; want %q", c.in, got, c.want)
		}
		if got := string(termsafe.Append([]byte("> "), c.in)); got != "> "+c.want {
			t.Errorf("Append(%q) = %q; want %q", c.in, got, "> "+c.want)
		}
	}
}

func TestStringKeepsCleanStringsWithoutCopying(t *testing.T) {
	s := "an ordinary comm"
	if allocs := testing.AllocsPerRun(100, func() { _ = termsafe.String(s) }); allocs != 0 {
		t.Errorf("String of clean text allocates %v times", allocs)
	}
}

func TestLinesKeepsNewlinesAndTabs(t *testing.T) {
	if got, want := termsafe.Lines("a\n\tb\x1b[2J\r"), "a\n\tb\\x1b[2J\\r"; got != want {
		t.Errorf("Lines = %q; want %q", got, want)
	}
}
