package deploy

import (
	"bufio"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestRelease runs make release twice and checks its artefacts: static
// linux/amd64 and linux/arm64 binaries, an SPDX SBOM of each listing every
// module the binary links, man pages, SHA256SUMS over them, and a
// signature of SHA256SUMS made by sluice that sluice (and cosign, when
// SLUICE_COSIGN names it) verifies; and that everything but the signature
// is the same both times.
func TestRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two release sets (-short)")
	}
	requireTool(t, "make", "make")
	dirs := []string{t.TempDir(), t.TempDir()}
	for _, d := range dirs {
		run(t, "..", nil, "make", "--no-print-directory", "release", "RELEASE_DIR="+d, "BUILD_DATE=2026-01-02T03:04:05Z")
	}
	dir := dirs[0]
	sums := readSums(t, filepath.Join(dir, "SHA256SUMS"))
	if other := readSums(t, filepath.Join(dirs[1], "SHA256SUMS")); !mapsEqual(sums, other) {
		t.Errorf("two releases of one commit differ:\n%v\n%v", sums, other)
	}
	for _, want := range []string{"sluice-linux-amd64", "sluice-linux-arm64", "sluice-linux-amd64.spdx.json", "sluice-linux-arm64.spdx.json", "sluice-man.tar.gz"} {
		if _, ok := sums[want]; !ok {
			t.Errorf("SHA256SUMS lacks %s", want)
		}
	}
	run(t, dir, nil, "sha256sum", "-c", "SHA256SUMS")

	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		bin := filepath.Join(dir, "sluice-linux-"+arch)
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		static := !slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })
		if f.Machine != machine || !static {
			t.Errorf("%s: machine %v (want %v), static %v", bin, f.Machine, machine, static)
		}
		f.Close()
		checkSBOM(t, bin, bin+".spdx.json")
	}
	if runtime.GOARCH == "amd64" {
		out := run(t, dir, nil, filepath.Join(dir, "sluice-linux-amd64"), "version")
		if !strings.HasPrefix(out, "sluice v") || !strings.Contains(out, "built:      2026-01-02T03:04:05Z") {
			t.Errorf("sluice version of the release binary:\n%s", out)
		}
	}

	verify := []string{"image", "verify-blob", "--key", "cosign.pub", "--signature", "SHA256SUMS.sig", "SHA256SUMS"}
	run(t, dir, nil, filepath.Join(dir, "sluice-linux-"+runtime.GOARCH), verify...)
	os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(strings.Replace(readFile(t, filepath.Join(dir, "SHA256SUMS")), "sluice-linux-arm64", "sluice-linux-arm65", 1)), 0o644)
	if out, err := exec.Command(filepath.Join(dir, "sluice-linux-"+runtime.GOARCH), verify...).CombinedOutput(); err == nil {
		t.Errorf("a changed SHA256SUMS verified:\n%s", out)
	}
	if cosign := os.Getenv("SLUICE_COSIGN"); cosign != "" {
		d := dirs[1]
		run(t, d, []string{"TUF_ROOT=" + t.TempDir()}, cosign, "verify-blob", "--key", "cosign.pub", "--signature", "SHA256SUMS.sig", "--insecure-ignore-tlog=true", "SHA256SUMS")
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readSums(t *testing.T, path string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(readFile(t, path)))
	for sc.Scan() {
		if sum, name, ok := strings.Cut(sc.Text(), "  "); ok {
			sums[name] = sum
		}
	}
	return sums
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// checkSBOM: the SBOM is SPDX 2.3, describes the binary by its SHA-256,
// and lists every module the binary links with its version.
func checkSBOM(t *testing.T, bin, path string) {
	t.Helper()
	var doc struct {
		SPDXVersion string `json:"spdxVersion"`
		Packages    []struct {
			Name, SPDXID, VersionInfo string
			Checksums                 []struct{ Algorithm, ChecksumValue string }
		} `json:"packages"`
		Relationships []struct{ SpdxElementID, RelationshipType, RelatedSpdxElement string } `json:"relationships"`
	}
	if err := json.Unmarshal([]byte(readFile(t, path)), &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || len(doc.Packages) == 0 || len(doc.Relationships) == 0 || doc.Relationships[0].RelationshipType != "DESCRIBES" {
		t.Fatalf("%s is not an SPDX 2.3 document describing a package", path)
	}
	sums := run(t, filepath.Dir(bin), nil, "sha256sum", filepath.Base(bin))
	if cs := doc.Packages[0].Checksums; len(cs) != 1 || !strings.HasPrefix(sums, cs[0].ChecksumValue+" ") {
		t.Errorf("%s does not name the binary's SHA-256 (%s): %v", path, sums, cs)
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	versions := map[string]string{}
	for _, p := range doc.Packages {
		versions[p.Name] = p.VersionInfo
	}
	for _, m := range info.Deps {
		if versions[m.Path] != m.Version {
			t.Errorf("%s: module %s is %q, the binary links %s", path, m.Path, versions[m.Path], m.Version)
		}
	}
	if len(info.Deps) < 10 || versions["github.com/spf13/cobra"] == "" {
		t.Errorf("%s lists %d modules, without cobra", path, len(info.Deps))
	}
}
