package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// runInProcess runs a command line as main would, without the binary.
func runInProcess(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), code
}

// TestHelpExitsZero: every way of asking for help prints it on stdout and
// exits 0, for the root and for every command, and each runnable command's
// help has examples.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{}, {"--help"}, {"-h"}, {"help"}, {"help", "run"}, {"image"}, {"config"}} {
		out, errOut, code := runSluice(t, args...)
		if code != 0 || !strings.Contains(out, "Usage:") || errOut != "" {
			t.Errorf("sluice %v: exit %d, stdout %d bytes, stderr %q", args, code, len(out), errOut)
		}
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		path := strings.Fields(c.CommandPath())[1:]
		out, errOut, code := runInProcess(t, append(path, "--help")...)
		if code != 0 || !strings.Contains(out, "Usage:") || errOut != "" {
			t.Errorf("sluice %s --help: exit %d, stderr %q", strings.Join(path, " "), code, errOut)
		}
		// cobra's own completion commands come with their help text.
		if (c.Runnable() || c.HasSubCommands()) && c.Parent() != nil && c.Parent().Name() != "completion" && c.Name() != "config" && !strings.Contains(out, "Examples:") {
			t.Errorf("sluice %s --help has no examples", strings.Join(path, " "))
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCommand())
}

// TestUsageMistakes: an unknown flag, command or a bad flag value is
// reported once, with a pointer to the command's help, and exits 2.
func TestUsageMistakes(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "trace_exec", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"image", "push", "-Z", "x"}, "unknown shorthand flag: 'Z'"},
		{[]string{"frob"}, `unknown command "frob" for "sluice"`},
		{[]string{"imgae"}, `did you mean image?`},
		{[]string{"image", "frob"}, `unknown command "frob" for "sluice image"`},
		{[]string{"config", "validate"}, "missing FILE"},
		{[]string{"run", "a", "b"}, `unexpected argument "b"`},
		{[]string{"run", "trace_exec", "-o", "xml"}, "want json or table"},
		{[]string{"agent", "--log-level", "loud"}, "want debug, info, warn or error"},
		{[]string{"image", "build", "dir"}, "missing --tag"},
		{[]string{"rollout", "no_shells"}, "missing REF"},
		{[]string{"rollout", "status"}, "missing STAGE"},
		{[]string{"rollout", "stauts", "no_shells"}, "did you mean status?"},
		{[]string{"rollout", "no_shells", "./f.wasm"}, "neither an image reference"},
		{[]string{"rollout", "web.no_shells", "reg.lan/s:v2"}, "a group is --group"},
		{[]string{"rollout", "undo", "no_shells", "--replicas", "9"}, "--replicas takes 1 to 5"},
		{[]string{"rollout", "status", "no_shells", "--wait", "1"}, "did you mean 1s?"},
	} {
		out, errOut, code := runSluice(t, c.args...)
		if code != 2 {
			t.Errorf("sluice %v: exit %d, want 2", c.args, code)
		}
		if out != "" {
			t.Errorf("sluice %v printed on stdout: %q", c.args, out)
		}
		if strings.Count(errOut, "sluice:") != 1 || !strings.Contains(errOut, c.want) || strings.Count(errOut, c.want) != 1 {
			t.Errorf("sluice %v: stderr does not say %q exactly once:\n%s", c.args, c.want, errOut)
		}
		if !strings.Contains(errOut, "--help' for usage") {
			t.Errorf("sluice %v: stderr does not point at the help:\n%s", c.args, errOut)
		}
	}
}

// TestDurationHint: a duration without a unit says which one was meant.
func TestDurationHint(t *testing.T) {
	_, errOut, code := runInProcess(t, "run", "trace_exec", "--timeout", "1")
	if code != 2 || !strings.Contains(errOut, `did you mean 1s?`) {
		t.Errorf("--timeout 1: exit %d, stderr:\n%s", code, errOut)
	}
	_, errOut, code = runInProcess(t, "run", "trace_exec", "--timeout", "soon")
	if code != 2 || !strings.Contains(errOut, "such as 10s") {
		t.Errorf("--timeout soon: exit %d, stderr:\n%s", code, errOut)
	}
	for _, c := range []struct {
		in   string
		want string
	}{{"1.5", "did you mean 1.5s?"}, {"1s", ""}, {"0", ""}, {"90m", ""}} {
		_, err := parseDuration(c.in)
		if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("parseDuration(%q) = %v, want an error saying %q", c.in, err, c.want)
		}
	}
}

// TestCompletion: the completion scripts come from the same command tree,
// and dynamic completion offers gadgets and flag values.
func TestCompletion(t *testing.T) {
	for shell, marker := range map[string]string{
		"bash": "__start_sluice",
		"zsh":  "#compdef sluice",
		"fish": "complete -c sluice",
	} {
		out, errOut, code := runSluice(t, "completion", shell)
		if code != 0 || !strings.Contains(out, marker) {
			t.Errorf("completion %s: exit %d, no %q in %d bytes; stderr %s", shell, code, marker, len(out), errOut)
		}
	}
	if _, errOut, code := runSluice(t, "completion", "tcsh"); code != 2 {
		t.Errorf("completion tcsh: exit %d, want 2; stderr %s", code, errOut)
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", ""}, []string{"agent", "run", "subscribe", "config", "image", "version", "completion"}},
		{[]string{"__complete", "run", ""}, []string{"trace_exec", "trace_open"}},
		{[]string{"__complete", "run", "trace_exec", "-o", ""}, []string{"json", "table"}},
		{[]string{"__complete", "run", "trace_exec", "--when-full", ""}, []string{"block", "drop_newest", "drop_oldest"}},
		{[]string{"__complete", "image", ""}, []string{"build", "push", "pull", "sign", "verify"}},
		{[]string{"__complete", "subscribe", "x", "--"}, []string{"--creds", "--nkey", "--tls-ca", "--since", "--last", "--all"}},
	} {
		out, errOut, code := runSluice(t, c.args...)
		if code != 0 {
			t.Errorf("%v: exit %d; stderr %s", c.args, code, errOut)
			continue
		}
		var got []string
		for _, l := range strings.Split(out, "\n") {
			if l != "" && !strings.HasPrefix(l, ":") {
				got = append(got, strings.SplitN(l, "\t", 2)[0])
			}
		}
		for _, w := range c.want {
			if !contains(got, w) {
				t.Errorf("%v: no %q among %v", c.args, w, got)
			}
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

var semver = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// TestVersion: `sluice version` names a semantic version, the commit, the
// build date and the Go version, as text and as JSON, and --version agrees.
func TestVersion(t *testing.T) {
	out, _, code := runSluice(t, "version")
	first, _, _ := strings.Cut(out, "\n")
	v, ok := strings.CutPrefix(first, "sluice ")
	if code != 0 || !ok || !semver.MatchString(v) {
		t.Fatalf("version: exit %d, first line %q is not `sluice SEMVER`:\n%s", code, first, out)
	}
	for _, want := range []string{"commit:", "built:", "go version: " + runtime.Version(), "platform:   " + runtime.GOOS + "/" + runtime.GOARCH} {
		if !strings.Contains(out, want) {
			t.Errorf("version output lacks %q:\n%s", want, out)
		}
	}
	if out, _, _ := runSluice(t, "--version"); out != "sluice "+v+"\n" {
		t.Errorf("--version = %q, want %q", out, "sluice "+v+"\n")
	}
	out, _, code = runSluice(t, "version", "-o", "json")
	var b buildInfo
	if err := json.Unmarshal([]byte(out), &b); code != 0 || err != nil || b.Version != v || b.GoVersion != runtime.Version() {
		t.Errorf("version -o json: exit %d, %v: %s", code, err, out)
	}
}

// TestVersionFromLinkerFlags: the values the Makefile sets with -ldflags
// -X are the ones printed.
func TestVersionFromLinkerFlags(t *testing.T) {
	defer func(v, c, d string) { version, commit, buildDate = v, c, d }(version, commit, buildDate)
	version, commit, buildDate = "v1.4.0-0.20260102030405-0123456789ab+dirty", "0123456789abcdef0123456789abcdef01234567", "2026-01-02T03:04:05Z"
	out, _, code := runInProcess(t, "version")
	want := "sluice v1.4.0-0.20260102030405-0123456789ab+dirty\ncommit:     0123456789abcdef0123456789abcdef01234567 (with uncommitted changes)\nbuilt:      2026-01-02T03:04:05Z\n"
	if code != 0 || !strings.HasPrefix(out, want) {
		t.Errorf("version:\n%s\nwant it to start with:\n%s", out, want)
	}
}

// TestVersionScript: scripts/version.sh, which the Makefile passes to the
// linker, gives semantic versions that order as the commits do: the tag
// on a tagged commit, a Go pseudo-version above the last tag after it, a
// v0.0.0 pseudo-version before any tag, +dirty with uncommitted changes.
func TestVersionScript(t *testing.T) {
	script, err := filepath.Abs("../../scripts/version.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
			"GIT_AUTHOR_DATE=2026-01-02T03:04:05Z", "GIT_COMMITTER_DATE=2026-01-02T03:04:05Z")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	versionOf := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("bash", append([]string{script}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("version.sh: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	if v := versionOf(); v != "v0.0.0-dev" {
		t.Errorf("outside a git checkout: %q, want v0.0.0-dev", v)
	}
	git("init", "-q")
	os.WriteFile(filepath.Join(dir, "f"), []byte("1"), 0o644)
	git("add", "f")
	git("commit", "-qm", "one")
	rev := git("rev-parse", "HEAD")[:12]
	for _, c := range []struct {
		setup func()
		want  string
	}{
		{func() {}, "v0.0.0-20260102030405-" + rev},
		{func() { git("tag", "v1.2.3") }, "v1.2.3"},
		{func() { os.WriteFile(filepath.Join(dir, "f"), []byte("2"), 0o644) }, "v1.2.3+dirty"},
		{func() { git("commit", "-qam", "two"); rev = git("rev-parse", "HEAD")[:12] }, "v1.2.4-0.20260102030405-REV"},
		{func() { git("tag", "v2.0.0-rc.1") }, "v2.0.0-rc.1"},
		{func() { git("commit", "-q", "--allow-empty", "-m", "three"); rev = git("rev-parse", "HEAD")[:12] }, "v2.0.0-rc.1.0.20260102030405-REV"},
		{func() { git("tag", "not-a-version") }, "v2.0.0-rc.1.0.20260102030405-REV"},
	} {
		c.setup()
		want := strings.ReplaceAll(c.want, "REV", rev)
		if v := versionOf(); v != want || !semver.MatchString(v) {
			t.Errorf("version %q, want %q", v, want)
		}
	}
	if d := versionOf("--date"); d != "2026-01-02T03:04:05Z" {
		t.Errorf("build date of a clean checkout = %q, want the commit's time", d)
	}
}

// TestManPages: `sluice man DIR` writes a page per command.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	if _, errOut, code := runInProcess(t, "man", dir); code != 0 {
		t.Fatalf("man: exit %d: %s", code, errOut)
	}
	for _, page := range []string{"sluice.1", "sluice-run.1", "sluice-subscribe.1", "sluice-image-sign.1", "sluice-completion-bash.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Errorf("no man page %s: %v", page, err)
			continue
		}
		if !bytes.Contains(b, []byte(".TH \"SLUICE\" \"1\"")) {
			t.Errorf("%s is not a man page:\n%.300s", page, b)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "sluice-run.1"))
	if !bytes.Contains(b, []byte("--timeout")) || !bytes.Contains(b, []byte("EXAMPLE")) {
		t.Errorf("sluice-run.1 lacks its flags or examples:\n%s", b)
	}
}
