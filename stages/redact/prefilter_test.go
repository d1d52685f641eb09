package main

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

func TestPrefilterLiterals(t *testing.T) {
	for _, c := range []struct {
		pattern string
		want    []string // among the literals
		none    bool     // no literal: everything goes through
	}{
		// (the parser factors api|access|auth into a(?:pi...|ccess|uth))
		{defaultPatterns[0], []string{"pwd", "token", "secret", "ccess", "uth"}, false},
		{defaultPatterns[1], []string{"bearer"}, false},
		{defaultPatterns[2], []string{"akia"}, false},
		{defaultPatterns[3], []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_"}, false},
		{defaultPatterns[4], []string{"://"}, false},
		{`x*y?`, nil, true},
		{`\S{40}`, nil, true},
		{`(?i)secret|.*`, nil, true},
		{`\p{Greek}+`, nil, true},
		// The parser keeps the smallest rune of a case-folded literal's
		// orbit: ſ (long s) becomes s, which text with ſ, being
		// non-ASCII, gets past anyway.
		{`(?i)ſecret`, []string{"secret"}, false},
	} {
		re, err := newPrefilter([]string{c.pattern})
		if err != nil {
			t.Fatal(err)
		}
		if re.all != c.none {
			t.Errorf("%s: lets everything through = %v, want %v", c.pattern, re.all, c.none)
			continue
		}
		var got []string
		for _, l := range re.lits {
			got = append(got, l...)
		}
		for _, w := range c.want {
			found := false
			for _, g := range got {
				found = found || g == w
			}
			if !found {
				t.Errorf("%s: literals %q lack %q", c.pattern, got, w)
			}
		}
	}
}

// TestPrefilterNeverHidesAMatch: whatever the patterns match, the
// prefilter lets through, on the strings the patterns are about, in any
// case, with Unicode that folds to ASCII, and on random strings built
// from the patterns' own pieces.
func TestPrefilterNeverHidesAMatch(t *testing.T) {
	// Each pattern alone: together, one with a weak literal ("-") would
	// let the others' misses through.
	patterns := append([]string{`(?i)\bkey=(\w+)`, `pass(word)?[:=]`, `[A-Z]{3}-\d+`, `(?s)begin.*end`}, defaultPatterns...)
	samples := []string{
		"--password=hunter2", "-PASSWORD hunter2", "--Api_Key=abc", "--apikey=x", "-auth=x", "--pwd=1",
		"Authorization: Bearer abcdefgh12345", "bearer\tABCDEFGH", "AKIAABCDEFGHIJKLMNOP", "ghp_" + strings.Repeat("a", 36),
		"https://user:pa55@host/x", "KEY=v", "kEy=v", "passwd:", "password=", "ABC-12", "begin\nend",
		"--paſſword=x", "tο\u212Aen", "--to\u212Aen=x", // long s, Kelvin sign
	}
	rng := rand.New(rand.NewPCG(3, 4))
	pieces := []string{"-", "--", "pass", "word", "wd", "token", "api", "_", "key", "=", " ", ":", "/", "@", "bearer", "AKIA", "gh", "p", "x", "Z", "9", "é", "\u212A", "begin", "end", "\n", "-1",
		"ghs_", "://", "u:p@", strings.Repeat("Ab1", 13), "h", "AKIA", "ABCDEFGH12345678"}
	for range 50000 {
		var b strings.Builder
		for range 1 + rng.IntN(8) {
			p := pieces[rng.IntN(len(pieces))]
			if rng.IntN(2) == 0 {
				p = strings.ToUpper(p)
			}
			b.WriteString(p)
		}
		samples = append(samples, b.String())
	}
	for _, pattern := range patterns {
		pf, err := newPrefilter([]string{pattern})
		if err != nil {
			t.Fatal(err)
		}
		if pf.all {
			t.Fatalf("%s: no literal derived; the test proves nothing with it", pattern)
		}
		re := regexp.MustCompile(pattern)
		matched := 0
		for _, s := range samples {
			if re.MatchString(s) {
				matched++
				if !pf.mayMatch([]byte(s)) {
					t.Errorf("%q matches %s, but the prefilter ruled it out", s, pattern)
				}
			}
		}
		if matched < 20 {
			t.Errorf("%s: only %d samples match: the test proves little", pattern, matched)
		}
	}
	defaults, err := newPrefilter(defaultPatterns)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"ls", "-la", "/usr/bin/gcc", "--verbose", "-O2", "main.c", "-o", "build/out", "https", "--path=/tmp"} {
		if defaults.mayMatch([]byte(s)) {
			t.Errorf("%q let through: the prefilter should rule out plain arguments", s)
		}
	}
}
