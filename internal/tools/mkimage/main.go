// Command mkimage builds sluice's container image without a container
// runtime or a base image, reproducibly: the same binary and date give the
// same image digest. The image holds the static sluice binary, the CA
// bundle of the build host (for registries and NATS over TLS) and empty
// /etc/sluice and /var/lib/sluice; it runs `sluice agent` as root, which
// the agent needs for eBPF unless given CAP_BPF, CAP_PERFMON and the rest
// (docs/operations.md, "Running in production").
//
// It writes a `docker save` tarball that `podman load` (or `docker load`)
// reads, and prints the image's digest.
//
//	go run ./internal/tools/mkimage -binary bin/linux-amd64/sluice -arch amd64 \
//	    -tag sluice:v1.2.3 -created 2026-01-02T03:04:05Z -o bin/sluice-image-amd64.tar
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	binary := flag.String("binary", "", "the static sluice binary (CGO_ENABLED=0) for -arch")
	arch := flag.String("arch", "amd64", "the binary's architecture (amd64, arm64)")
	caBundle := flag.String("ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "CA certificates to include; empty: none")
	created := flag.String("created", "", "the image's creation time, RFC 3339 (default $SOURCE_DATE_EPOCH, else 1970-01-01)")
	version := flag.String("version", "", "the version, for the org.opencontainers.image.version label")
	revision := flag.String("revision", "", "the commit, for the org.opencontainers.image.revision label")
	out := flag.String("o", "", "write the image tarball here")
	var tags stringList
	flag.Var(&tags, "tag", "name the image (repeatable), such as sluice:v1.2.3")
	flag.Parse()
	if *binary == "" || *out == "" || len(tags) == 0 {
		fmt.Fprintln(os.Stderr, "usage: mkimage -binary FILE -arch ARCH -tag NAME:TAG -o FILE.tar")
		os.Exit(2)
	}
	digest, err := build(*binary, *arch, *caBundle, *created, *version, *revision, tags, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s: %s (%s)\n", *out, digest, strings.Join(tags, ", "))
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func creationTime(created string) (time.Time, error) {
	if created != "" {
		return time.Parse(time.RFC3339, created)
	}
	if epoch := os.Getenv("SOURCE_DATE_EPOCH"); epoch != "" {
		var sec int64
		if _, err := fmt.Sscan(epoch, &sec); err != nil {
			return time.Time{}, fmt.Errorf("parse SOURCE_DATE_EPOCH %q: %w", epoch, err)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	return time.Unix(0, 0).UTC(), nil
}

func build(binary, arch, caBundle, created, version, revision string, tags []string, out string) (string, error) {
	when, err := creationTime(created)
	if err != nil {
		return "", err
	}
	bin, err := os.ReadFile(binary)
	if err != nil {
		return "", fmt.Errorf("read the binary: %w", err)
	}
	files := []file{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/sluice/", mode: 0o755, dir: true},
		{name: "tmp/", mode: 0o1777, dir: true},
		{name: "usr/", mode: 0o755, dir: true},
		{name: "usr/bin/", mode: 0o755, dir: true},
		{name: "usr/bin/sluice", mode: 0o755, data: bin},
		{name: "var/", mode: 0o755, dir: true},
		{name: "var/lib/", mode: 0o755, dir: true},
		{name: "var/lib/sluice/", mode: 0o700, dir: true},
	}
	if caBundle != "" {
		ca, err := os.ReadFile(caBundle)
		if err != nil {
			return "", fmt.Errorf("read the CA bundle: %w", err)
		}
		files = append(files,
			file{name: "etc/ssl/", mode: 0o755, dir: true},
			file{name: "etc/ssl/certs/", mode: 0o755, dir: true},
			file{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca})
	}
	layerTar, err := tarOf(files, when)
	if err != nil {
		return "", err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return "", fmt.Errorf("make the layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return "", err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS = arch, "linux"
	cfg.Created = v1.Time{Time: when}
	cfg.Config = v1.Config{
		Entrypoint: []string{"/usr/bin/sluice"},
		Cmd:        []string{"agent"},
		Env:        []string{"PATH=/usr/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
		WorkingDir: "/",
		Volumes:    map[string]struct{}{"/var/lib/sluice": {}},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "sluice",
			"org.opencontainers.image.description": "Kernel security events, filtered, to a message bus",
			"org.opencontainers.image.version":     version,
			"org.opencontainers.image.revision":    revision,
			"org.opencontainers.image.created":     when.Format(time.RFC3339),
		},
	}
	cfg.History = []v1.History{{Created: v1.Time{Time: when}, CreatedBy: "mkimage (sluice make image)"}}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return "", err
	}
	refs := map[name.Reference]v1.Image{}
	for _, t := range tags {
		ref, err := name.NewTag(t, name.WithDefaultRegistry(""))
		if err != nil {
			return "", fmt.Errorf("tag %q: %w", t, err)
		}
		refs[ref] = img
	}
	if err := tarball.MultiRefWriteToFile(out, refs); err != nil {
		return "", fmt.Errorf("write %s: %w", out, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return "", err
	}
	return digest.String(), nil
}

type file struct {
	name string
	mode int64
	dir  bool
	data []byte
}

// tarOf writes files in the order given, owned by root, with one time: the
// layer's bytes depend on the contents only.
func tarOf(files []file, when time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: when, Typeflag: tar.TypeReg, Size: int64(len(f.data)), Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
