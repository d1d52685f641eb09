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
}

func (e *PolicyError) Error() string {
	d := ""
	if e.Digest != "" {
		d = " (" + e.Digest.String() + ")"
	}
	return fmt.Sprintf("image %s%s is not allowed: no rule of the allow-list matches its name or digest (rules: %s)", e.Ref, d, strings.Join(e.Rules, ", "))
}

// AllowList is the agent's image allow-list. A rule is a digest
// ("sha256:..."), a name ("registry/repo", any tag), a name with a tag
// ("registry/repo:v1") or digest ("registry/repo@sha256:..."), or a prefix
// ending in "/*" ("registry/gadgets/*", every repository below). An empty
// list allows everything.
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

// MayAllow tells whether some rule could allow ref once its digest is
// known, so that a refused name is not even pulled.
func (l AllowList) MayAllow(ref Reference) bool {
	if len(l) == 0 {
		return true
	}
	for _, r := range l {
		if strings.HasPrefix(r, "sha256:") || matchName(r, ref) {
			return true
		}
	}
	return ref.Digest != "" && l.Allows(ref, ref.Digest) == nil
}

// Allows checks ref, resolved to d, against the list.
func (l AllowList) Allows(ref Reference, d digest.Digest) error {
	if len(l) == 0 {
		return nil
	}
	for _, r := range l {
		if strings.HasPrefix(r, "sha256:") {
			if d.String() == r {
				return nil
			}
			continue
		}
		if matchName(r, ref) {
			rr, err := ParseReference(r)
			if err == nil && rr.Digest != "" && rr.Digest != d {
				continue
			}
			return nil
		}
	}
	return &PolicyError{Ref: ref, Digest: d, Rules: l}
}

func matchName(rule string, ref Reference) bool {
	if p, ok := strings.CutSuffix(rule, "/*"); ok {
		return strings.HasPrefix(ref.Name(), p+"/")
	}
	rr, err := ParseReference(rule)
	if err != nil || rr.Name() != ref.Name() {
		return false
	}
	// A rule without an explicit tag (ParseReference filled in "latest")
	// allows every tag.
	explicitTag := strings.Contains(rule[strings.LastIndex(rule, "/")+1:], ":")
	if explicitTag && rr.Tag != "" && rr.Tag != ref.Tag {
		return false
	}
	return true
}
