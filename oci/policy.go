package oci

import (
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
)

// PolicyError reports an image the allow-list refused.
type PolicyError struct {
	Ref    Reference
	Digest digest.Digest
	Rules  []string
	// Notes say why tag rules naming the repository did not match: the
	// digest each tag names, or why it could not be resolved.
	Notes []string
}

func (e *PolicyError) Error() string {
	d := ""
	if e.Digest != "" {
		d = " (" + e.Digest.String() + ")"
	}
	msg := fmt.Sprintf("image %s%s is not allowed: no rule of the allow-list matches its name or digest (rules: %s)", e.Ref, d, strings.Join(e.Rules, ", "))
	if len(e.Notes) > 0 {
		msg += "; a tag rule allows only the digest its tag names: " + strings.Join(e.Notes, "; ")
	}
	return msg
}

// AllowList is the agent's image allow-list. A rule is
//
//   - a digest ("sha256:..."): that content, under any name;
//   - a name ("registry/repo"): any image of that repository;
//   - a prefix ending in "/*" ("registry/gadgets/*"): any image of the
//     repositories below;
//   - a name with a digest ("registry/repo@sha256:..."): that content of
//     that repository;
//   - a name with a tag ("registry/repo:v1"): exactly the content the tag
//     names, however the reference is written (NAME:v1, NAME@DIGEST or
//     NAME:v1@DIGEST): another digest of the repository is refused.
//
// An empty list allows everything. That a digest-pinned reference names
// content of its repository (and not any image of the store) is the
// store's part: see Store.Resolve.
type AllowList []string

// ValidateRule reports a rule that can never match.
func ValidateRule(rule string) error {
	switch {
	case rule == "":
		return fmt.Errorf("empty rule")
	case strings.HasPrefix(rule, "sha256:"):
		if _, err := digest.Parse(rule); err != nil {
			return fmt.Errorf("digest rule %q: %w", rule, err)
		}
		return nil
	case strings.HasSuffix(rule, "/*"):
		if strings.Contains(strings.TrimSuffix(rule, "/*"), "*") {
			return fmt.Errorf("rule %q: '*' may only end a prefix, as in registry.example.com/gadgets/*", rule)
		}
		return nil
	case strings.Contains(rule, "*"):
		return fmt.Errorf("rule %q: '*' may only end a prefix, as in registry.example.com/gadgets/*", rule)
	}
	if _, err := ParseReference(rule); err != nil {
		return fmt.Errorf("rule %q: %w", rule, err)
	}
	return nil
}

// allowRule is a parsed rule.
type allowRule struct {
	digest digest.Digest // a digest rule, or the digest of a name@digest rule
	prefix string        // a prefix rule: "registry/gadgets"
	name   string        // a name, name@digest or name:tag rule
	tag    Reference     // a name:tag rule (without a digest): the tag to resolve
}

func parseRule(r string) (allowRule, bool) {
	if strings.HasPrefix(r, "sha256:") {
		d, err := digest.Parse(r)
		return allowRule{digest: d}, err == nil
	}
	if p, ok := strings.CutSuffix(r, "/*"); ok {
		return allowRule{prefix: p}, true
	}
	rr, err := ParseReference(r)
	if err != nil {
		return allowRule{}, false
	}
	out := allowRule{name: rr.Name(), digest: rr.Digest}
	// ParseReference fills in "latest" for a rule without a tag, which
	// allows every tag; only a tag the rule spells out pins.
	explicitTag := strings.Contains(r[strings.LastIndex(r, "/")+1:], ":")
	if explicitTag && rr.Digest == "" {
		out.tag = rr
	}
	return out, true
}

// matchesName tells whether the rule is about ref's repository at all.
func (r allowRule) matchesName(ref Reference) bool {
	switch {
	case r.prefix != "":
		return strings.HasPrefix(ref.Name(), r.prefix+"/")
	case r.name != "":
		return r.name == ref.Name()
	}
	return false
}

// MayAllow tells whether some rule could allow ref once its digest is
// known, so that a refused name is not even pulled.
func (l AllowList) MayAllow(ref Reference) bool {
	if len(l) == 0 {
		return true
	}
	for _, s := range l {
		r, ok := parseRule(s)
		if !ok {
			continue
		}
		if r.matchesName(ref) || (r.name == "" && r.prefix == "" && (ref.Digest == "" || ref.Digest == r.digest)) {
			return true
		}
	}
	return false
}

// TagResolver answers what digest a tag names now, for tag rules.
type TagResolver func(tag Reference) (digest.Digest, error)

// Allows checks ref, resolved to the content d, against the list. tags
// resolves the tags of tag rules; it is asked only when a tag rule names
// ref's repository.
func (l AllowList) Allows(ref Reference, d digest.Digest, tags TagResolver) error {
	if len(l) == 0 {
		return nil
	}
	var notes []string
	for _, s := range l {
		r, ok := parseRule(s)
		if !ok {
			continue
		}
		switch {
		case r.name == "" && r.prefix == "": // digest rule
			if d == r.digest {
				return nil
			}
		case !r.matchesName(ref):
		case r.tag.Tag != "":
			td, err := tags(r.tag)
			switch {
			case err != nil:
				notes = append(notes, fmt.Sprintf("%s: %v", s, err))
			case td == d:
				return nil
			default:
				notes = append(notes, fmt.Sprintf("%s names %s", s, td))
			}
		case r.digest != "":
			if d == r.digest {
				return nil
			}
		default: // a name or prefix
			return nil
		}
	}
	return &PolicyError{Ref: ref, Digest: d, Rules: l, Notes: notes}
}
