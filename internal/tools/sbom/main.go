// Command sbom writes the SPDX 2.3 SBOM (JSON) of a Go binary from the
// build information the Go toolchain records in it (debug/buildinfo): the
// main module, every module linked in with its version and go.sum hash,
// the Go toolchain, and the build settings. It lists exactly what the
// binary holds, not what go.mod mentions. The output depends on the
// binary and -created only, so a release's SBOM is reproducible.
//
//	go run ./internal/tools/sbom -created 2026-01-02T03:04:05Z -o sluice.spdx.json bin/linux-amd64/sluice
package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"
)

func main() {
	created := flag.String("created", "", "the document's creation time, RFC 3339 (default: the binary's vcs.time, else now)")
	out := flag.String("o", "", "write the SBOM here (default: stdout)")
	name := flag.String("name", "", "the package name of the binary (default: its file name)")
	version := flag.String("version", "", "the binary's version (default: the main module's)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: sbom [-created TIME] [-o FILE] BINARY")
		os.Exit(2)
	}
	doc, err := build(flag.Arg(0), *name, *version, *created)
	if err == nil {
		var b []byte
		if b, err = json.MarshalIndent(doc, "", "  "); err == nil {
			b = append(b, '\n')
			if *out == "" {
				_, err = os.Stdout.Write(b)
			} else {
				err = os.WriteFile(*out, b, 0o644)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sbom:", err)
		os.Exit(1)
	}
}

type document struct {
	SPDXVersion       string         `json:"spdxVersion"`
	DataLicense       string         `json:"dataLicense"`
	SPDXID            string         `json:"SPDXID"`
	Name              string         `json:"name"`
	DocumentNamespace string         `json:"documentNamespace"`
	CreationInfo      creationInfo   `json:"creationInfo"`
	Packages          []pkg          `json:"packages"`
	Relationships     []relationship `json:"relationships"`
}

type creationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type pkg struct {
	Name             string     `json:"name"`
	SPDXID           string     `json:"SPDXID"`
	VersionInfo      string     `json:"versionInfo,omitempty"`
	DownloadLocation string     `json:"downloadLocation"`
	FilesAnalyzed    bool       `json:"filesAnalyzed"`
	Checksums        []checksum `json:"checksums,omitempty"`
	ExternalRefs     []extRef   `json:"externalRefs,omitempty"`
	PrimaryPurpose   string     `json:"primaryPackagePurpose,omitempty"`
	Comment          string     `json:"comment,omitempty"`
}

type checksum struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"checksumValue"`
}

type extRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

type relationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

func build(path, name, version, created string) (*document, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the build information of %s: %w", path, err)
	}
	sum := sha256.Sum256(bin)
	binSum := hex.EncodeToString(sum[:])
	if name == "" {
		name = filepath.Base(path)
	}
	if version == "" {
		version = info.Main.Version
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if created == "" {
		created = settings["vcs.time"]
	}
	if created == "" {
		created = time.Now().UTC().Format(time.RFC3339)
	}
	if _, err := time.Parse(time.RFC3339, created); err != nil {
		return nil, fmt.Errorf("creation time %q: %w", created, err)
	}

	var buildSettings []string
	for _, s := range info.Settings {
		buildSettings = append(buildSettings, s.Key+"="+s.Value)
	}
	root := pkg{
		Name: name, SPDXID: "SPDXRef-Package-binary", VersionInfo: version,
		DownloadLocation: "NOASSERTION", FilesAnalyzed: false, PrimaryPurpose: "APPLICATION",
		Checksums: []checksum{{"SHA256", binSum}},
		Comment:   fmt.Sprintf("Go binary of %s built with %s (%s)", info.Path, info.GoVersion, strings.Join(buildSettings, " ")),
	}
	doc := &document{
		SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXID: "SPDXRef-DOCUMENT",
		Name: name + "-" + version,
		// Unique per binary, and the same for the same binary.
		DocumentNamespace: "https://spdx.org/spdxdocs/" + name + "-" + binSum,
		CreationInfo:      creationInfo{Created: created, Creators: []string{"Tool: sluice internal/tools/sbom"}},
		Packages:          []pkg{root},
		Relationships:     []relationship{{"SPDXRef-DOCUMENT", "DESCRIBES", root.SPDXID}},
	}
	add := func(id string, m *debug.Module, purpose string) {
		if m.Replace != nil {
			m = m.Replace
		}
		p := pkg{
			Name: m.Path, SPDXID: id, VersionInfo: m.Version, DownloadLocation: "NOASSERTION",
			PrimaryPurpose: purpose,
		}
		if m.Version != "" && m.Version != "(devel)" {
			p.ExternalRefs = []extRef{{"PACKAGE-MANAGER", "purl", "pkg:golang/" + m.Path + "@" + m.Version}}
		}
		if h, ok := strings.CutPrefix(m.Sum, "h1:"); ok {
			if raw, err := base64.StdEncoding.DecodeString(h); err == nil {
				p.Checksums = []checksum{{"SHA256", hex.EncodeToString(raw)}}
				p.Comment = "checksum: the module's go.sum hash (" + m.Sum + ")"
			}
		}
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, relationship{root.SPDXID, "CONTAINS", id})
	}
	add("SPDXRef-Package-main", &info.Main, "SOURCE")
	for i, m := range info.Deps {
		add(fmt.Sprintf("SPDXRef-Package-dep-%d", i), m, "LIBRARY")
	}
	doc.Packages = append(doc.Packages, pkg{
		Name: "go", SPDXID: "SPDXRef-Package-go", VersionInfo: strings.TrimPrefix(info.GoVersion, "go"),
		DownloadLocation: "NOASSERTION", PrimaryPurpose: "LIBRARY", Comment: "the Go toolchain and standard library",
		ExternalRefs: []extRef{{"PACKAGE-MANAGER", "purl", "pkg:golang/stdlib@" + info.GoVersion}},
	})
	doc.Relationships = append(doc.Relationships, relationship{root.SPDXID, "CONTAINS", "SPDXRef-Package-go"})
	return doc, nil
}
