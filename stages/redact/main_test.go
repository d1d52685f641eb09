package main

import (
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/sdk/go/sluice"
)

// strsHit reads lists of strs in place; whatever it reads it must decide as
// elemsHit (the SDK's iteration) does, and a list it does not read (an
// element of another type, a str32, a cut list) it must leave to elemsHit.
func TestStrsHitAgreesWithElemsHit(t *testing.T) {
	if err := sluice.InitForTest(nil); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 300) // a str16
	lists := [][]any{
		{}, {"ls", "-l"}, {"mysql", "--password", "x"}, {"--password"}, {"curl", "-H", "Authorization: Bearer abcdefgh12345678"},
		{"git", "clone", "https://u:p@host/r"}, {long, "--token=" + long}, {long, "-p", "x"}, {"cc", long, "--secret", "s"},
		{1, "--password", "x"}, {"--password", 2, "x"}, {"AKIAABCDEFGHIJKLMNOP", nil}, {[]byte("--token=abc")},
		{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "--api-key=zz"}, // an array16
	}
	read := 0
	for _, l := range lists {
		var w sluice.Writer
		w.BeginArray()
		for _, el := range l {
			w.Any(el)
		}
		w.EndArray()
		v := w.Value()
		want := elemsHit(v)
		raw := v.Raw()
		for cut := len(raw); cut >= 0; cut-- {
			hit, ok := strsHit(raw[:cut])
			if cut == len(raw) && ok {
				read++
				if hit != want {
					t.Errorf("%q: strsHit = %v, elemsHit = %v", l, hit, want)
				}
			}
			if cut < len(raw) && ok && hit != want && !hit {
				// A cut list may end before the hit, but must not be
				// read as one that has none.
				t.Errorf("%q cut at %d of %d: read as without a hit", l, cut, len(raw))
			}
		}
	}
	if read < 10 {
		t.Errorf("strsHit read %d of %d lists; want the lists of strs read in place", read, len(lists))
	}
}
