package oci

import (
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	"oras.land/oras-go/v2/registry"
)

// Scheme is the explicit prefix of an image reference in config values that
// also accept file paths: module = "oci://localhost:5000/stages/x:v1".
const Scheme = "oci://"

// DefaultTag is the tag of a reference that names neither a tag nor a digest.
const DefaultTag = "latest"

// Reference is a parsed image reference,
// HOST[:PORT]/REPOSITORY[:TAG][@DIGEST]. A reference always names its
// registry host: there is no implicit default registry, so that a name means
// the same thing on every machine.
type Reference struct {
	Registry   string // host[:port]
	Repository string // path below the host
	Tag        string // "" when only a digest is given
	Digest     digest.Digest
}

// ParseReference parses an image reference, with or without the oci://
// prefix. A reference without a tag or digest gets the tag "latest".
func ParseReference(s string) (Reference, error) {
	raw := strings.TrimPrefix(s, Scheme)
	if raw == "" {
		return Reference{}, fmt.Errorf("parse image reference %q: empty", s)
	}
	host, path, ok := strings.Cut(raw, "/")
	if !ok || !looksLikeHost(host) {
		return Reference{}, fmt.Errorf("parse image reference %q: name the registry host first, as in localhost:5000/gadgets/NAME:TAG or registry.example.com/NAME:TAG", s)
	}
	ref := Reference{Registry: host}
	if i := strings.Index(path, "@"); i >= 0 {
		d, err := digest.Parse(path[i+1:])
		if err != nil {
			return Reference{}, fmt.Errorf("parse image reference %q: digest: %w", s, err)
		}
		ref.Digest = d
		path = path[:i]
	}
	if i := strings.LastIndex(path, ":"); i >= 0 {
		ref.Tag = path[i+1:]
		path = path[:i]
	}
	ref.Repository = path
	if ref.Tag == "" && ref.Digest == "" {
		ref.Tag = DefaultTag
	}
	check := registry.Reference{Registry: ref.Registry, Repository: ref.Repository, Reference: ref.Tag}
	if err := check.ValidateRegistry(); err != nil {
		return Reference{}, fmt.Errorf("parse image reference %q: %w", s, err)
	}
	if err := check.ValidateRepository(); err != nil {
		return Reference{}, fmt.Errorf("parse image reference %q: %w", s, err)
	}
	if ref.Tag != "" {
		if err := check.ValidateReferenceAsTag(); err != nil {
			return Reference{}, fmt.Errorf("parse image reference %q: %w", s, err)
		}
	}
	return ref, nil
}

// LooksLikeReference tells an image reference from a file path or a
// built-in gadget name, by syntax alone: a value is a reference when it
// starts with oci://, or when its first path element is a registry host
// (localhost, or a name with a '.' or a ':port') and it names a tag or a
// digest. "./x.o", "gadgets/x.o", "/abs/x.o" and "trace_exec" are not
// references; "localhost:5000/g/x:v1" and "ghcr.io/org/x@sha256:..." are.
func LooksLikeReference(s string) bool {
	if strings.HasPrefix(s, Scheme) {
		return true
	}
	host, path, ok := strings.Cut(s, "/")
	if !ok || !looksLikeHost(host) || path == "" {
		return false
	}
	last := path[strings.LastIndex(path, "/")+1:]
	return strings.Contains(last, ":") || strings.Contains(path, "@")
}

func looksLikeHost(h string) bool {
	if h == "" || h == "." || h == ".." {
		return false
	}
	return h == "localhost" || strings.HasPrefix(h, "localhost:") || strings.ContainsAny(h, ".:")
}

// Name is the repository with its host: "localhost:5000/gadgets/trace_exec".
// It is what cosign signs as the docker-reference.
func (r Reference) Name() string { return r.Registry + "/" + r.Repository }

// String is the canonical form: NAME:TAG, NAME@DIGEST or NAME:TAG@DIGEST.
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// StoreKey is the name under which the local store records the reference:
// NAME:TAG for a tag (Inspektor Gadget's convention), NAME@DIGEST for a
// digest-only reference.
func (r Reference) StoreKey() string {
	if r.Tag != "" {
		return r.Name() + ":" + r.Tag
	}
	return r.Name() + "@" + r.Digest.String()
}

// RemoteRef is the reference to ask a registry for: the digest when pinned,
// else the tag.
func (r Reference) RemoteRef() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

// WithDigest returns r pinned to d, keeping its tag.
func (r Reference) WithDigest(d digest.Digest) Reference {
	r.Digest = d
	return r
}
