package main

import (
	"regexp/syntax"
	"slices"
	"strings"
)

// A prefilter finds the strings a set of patterns cannot match, so that
// only the few that might (an argument mentioning a password, a token, a
// URL with credentials) run the regular expressions, whose cost in Go's
// Wasm code is microseconds per string. For each pattern it derives, from
// the parsed expression, literals of which every match contains one (the
// default --password pattern needs one of "password", "token", "api", ...;
// the AWS pattern "akia"); a string that contains none of a pattern's
// literals does not match it, so only the patterns whose literals it holds
// run. It compares ASCII case-insensitively, which
// only adds candidates, and lets every string with a non-ASCII byte
// through, since Unicode case folding (the Kelvin sign matches (?i)k) is
// beyond it. A pattern it can derive no literal from (".*secret" has one;
// "\\S{40}" has none) is a candidate for every string.
type prefilter struct {
	all    bool          // some pattern has no literal (always is not 0)
	always uint64        // the patterns that have no literal
	first  [256]bool     // first bytes of the literals, both cases
	hot    [256]uint8    // 1 for first bytes and bytes past ASCII: where candidates start
	pairs  [1 << 13]byte // bit lower(a)<<8|lower(b) set when a literal starts with ab
	short  [256]bool     // first bytes of one-byte literals, both cases
	lits   [256][]string // the literals (lower case) by first byte (lower case)
	masks  [256][]uint64 // the patterns each literal stands for, as lits
	n      int           // patterns
	minLen int           // the shortest literal: a shorter string holds none
}

// patternBit is the bit of pattern i in a candidate mask; patterns past
// 63 share the last bit.
func patternBit(i int) uint64 { return 1 << min(i, 63) }

// maxLiterals bounds the sets the derivation multiplies out.
const maxLiterals = 64

// info is what the derivation knows about a piece of a pattern: either
// the exact strings it matches (exact), or literals one of which every
// match contains (req; none: no requirement).
type info struct {
	exact   []string
	isExact bool
	req     []string
}

func newPrefilter(patterns []string) (*prefilter, error) {
	p := &prefilter{n: len(patterns)}
	for c := 0x80; c < 256; c++ {
		p.hot[c] = 1
	}
	for i, src := range patterns {
		re, err := syntax.Parse(src, syntax.Perl)
		if err != nil {
			return nil, err
		}
		lits := required(re.Simplify())
		if len(lits) == 0 {
			p.all = true
			p.always |= patternBit(i)
			continue
		}
		for _, l := range lits {
			if p.minLen == 0 || len(l) < p.minLen {
				p.minLen = len(l)
			}
			c := l[0]
			p.first[c] = true
			p.first[upper(c)] = true
			p.hot[c], p.hot[upper(c)] = 1, 1
			if len(l) == 1 {
				p.short[c], p.short[upper(c)] = true, true
			} else {
				pair := int(c)<<8 | int(l[1])
				p.pairs[pair>>3] |= 1 << (pair & 7)
			}
			if k := slices.Index(p.lits[c], l); k >= 0 {
				p.masks[c][k] |= patternBit(i)
			} else {
				p.lits[c] = append(p.lits[c], l)
				p.masks[c] = append(p.masks[c], patternBit(i))
			}
		}
	}
	return p, nil
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c - 'A' + 'a'
	}
	return c
}

// mayMatch reports whether some pattern might match s: false means none
// does.
func (p *prefilter) mayMatch(s []byte) bool { return p.candidates(s) != 0 }

// candidates returns the patterns that might match s, as a mask of
// patternBit: a pattern not in it does not match s.
func (p *prefilter) candidates(s []byte) uint64 {
	if len(s) < p.minLen && !p.all {
		// Shorter than every literal: no pattern matches (a non-ASCII
		// text takes at least as many bytes as the ASCII it folds to).
		return 0
	}
	found := p.always
	for i := 0; i < len(s); {
		// Eight bytes a round while none is hot: in Go's Wasm code a
		// loop iteration costs more than a table lookup.
		if i+8 <= len(s) && p.hot[s[i]]|p.hot[s[i+1]]|p.hot[s[i+2]]|p.hot[s[i+3]]|
			p.hot[s[i+4]]|p.hot[s[i+5]]|p.hot[s[i+6]]|p.hot[s[i+7]] == 0 {
			i += 8
			continue
		}
		for end := min(i+8, len(s)); i < end; i++ {
			c := s[i]
			if p.hot[c] == 0 {
				continue
			}
			if c >= 0x80 {
				if p.n > 63 {
					return ^uint64(0)
				}
				return patternBit(p.n) - 1
			}
			// Most first bytes are common letters: the byte after them
			// rules out most of those too.
			if !p.short[c] {
				if i+1 == len(s) {
					continue
				}
				pair := int(lowerTab[c])<<8 | int(lowerTab[s[i+1]])
				if p.pairs[pair>>3]&(1<<(pair&7)) == 0 {
					continue
				}
			}
			found |= p.at(s, i)
		}
	}
	return found
}

// at returns the patterns whose literals start at s[i].
func (p *prefilter) at(s []byte, i int) uint64 {
	var found uint64
	lc := lowerTab[s[i]]
	for k, l := range p.lits[lc] {
		if len(l) <= len(s)-i && hasFoldPrefix(s[i:], l) {
			found |= p.masks[lc][k]
		}
	}
	return found
}

// lowerTab maps ASCII capitals to lower case and every other byte to itself.
var lowerTab = func() (t [256]byte) {
	for c := range 256 {
		t[c] = lower(byte(c))
	}
	return t
}()

// hasFoldPrefix reports whether s starts with lit (lower case), ASCII
// case-insensitively.
func hasFoldPrefix(s []byte, lit string) bool {
	for j := 1; j < len(lit); j++ {
		if lower(s[j]) != lit[j] {
			return false
		}
	}
	return true
}

// required returns literals (lower case, non-empty) one of which every
// match of re contains, or nil when it finds none.
func required(re *syntax.Regexp) []string {
	in := derive(re)
	if in.isExact {
		return usable(in.exact)
	}
	return usable(in.req)
}

// usable returns lits unless one is empty (a requirement met by every
// string).
func usable(lits []string) []string {
	if len(lits) == 0 || slices.Contains(lits, "") {
		return nil
	}
	return lits
}

func exact(s ...string) info { return info{exact: s, isExact: true} }

func derive(re *syntax.Regexp) info {
	switch re.Op {
	case syntax.OpLiteral:
		var b strings.Builder
		for _, r := range re.Rune {
			if r >= 0x80 {
				return info{} // Unicode folding: not ours
			}
			b.WriteByte(lower(byte(r)))
		}
		return exact(b.String())
	case syntax.OpCharClass:
		var set []string
		for k := 0; k+1 < len(re.Rune); k += 2 {
			lo, hi := re.Rune[k], re.Rune[k+1]
			if hi >= 0x80 || int(hi-lo)+1+len(set) > 8 {
				return info{}
			}
			for r := lo; r <= hi; r++ {
				if s := string(lower(byte(r))); !slices.Contains(set, s) {
					set = append(set, s)
				}
			}
		}
		if len(set) == 0 {
			return info{}
		}
		return exact(set...)
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return exact("")
	case syntax.OpCapture:
		return derive(re.Sub[0])
	case syntax.OpPlus:
		in := derive(re.Sub[0])
		if in.isExact {
			return info{req: in.exact}
		}
		return in
	case syntax.OpRepeat:
		if re.Min == 0 {
			return info{}
		}
		in := derive(re.Sub[0])
		if in.isExact {
			return info{req: in.exact}
		}
		return in
	case syntax.OpConcat:
		return concat(re.Sub)
	case syntax.OpAlternate:
		var all []string
		allExact := true
		for _, sub := range re.Sub {
			in := derive(sub)
			lits := in.req
			if in.isExact {
				lits = in.exact
			} else {
				allExact = false
			}
			if !in.isExact && len(usable(lits)) == 0 {
				return info{}
			}
			for _, l := range lits {
				if !slices.Contains(all, l) {
					all = append(all, l)
				}
			}
			if len(all) > maxLiterals {
				return info{}
			}
		}
		if allExact {
			return exact(all...)
		}
		return info{req: all}
	}
	// Star, quest, any character: no requirement.
	return info{}
}

// concat multiplies out runs of exact pieces and keeps the best
// requirement among the runs and the inexact pieces: the one whose
// shortest literal is longest.
func concat(subs []*syntax.Regexp) info {
	run := []string{""}
	var best []string
	consider := func(lits []string) {
		lits = usable(lits)
		if lits != nil && (best == nil || shortest(lits) > shortest(best)) {
			best = lits
		}
	}
	allExact := true
	for _, sub := range subs {
		in := derive(sub)
		if in.isExact && len(run)*len(in.exact) <= maxLiterals {
			var next []string
			for _, a := range run {
				for _, b := range in.exact {
					if s := a + b; !slices.Contains(next, s) {
						next = append(next, s)
					}
				}
			}
			run = next
			continue
		}
		allExact = false
		consider(run)
		run = []string{""}
		if in.isExact {
			consider(in.exact)
		} else {
			consider(in.req)
		}
	}
	if allExact {
		return exact(run...)
	}
	consider(run)
	return info{req: best}
}

func shortest(lits []string) int {
	n := len(lits[0])
	for _, l := range lits[1:] {
		n = min(n, len(l))
	}
	return n
}
