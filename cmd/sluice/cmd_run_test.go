package main

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/hcl/v2"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/testutil"
)

// TestSourceName: `sluice run` names its one source after the gadget: a
// built-in's name, an ELF's base name without .bpf.o, an image's last
// repository element without its tag or digest.
func TestSourceName(t *testing.T) {
	for _, c := range []struct{ gadget, want string }{
		{"trace_exec", "trace_exec"},
		{"./gadgets/trace_open.bpf.o", "trace_open"},
		{"/abs/dir/my.o", "my"},
		{"localhost:5000/gadgets/trace_exec:v1", "trace_exec"},
		{"oci://localhost:5000/gadgets/trace_exec:v1", "trace_exec"},
		{"ghcr.io/org/x@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "x"},
		{"registry.example.com:443/a/b/c:1.0@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "c"},
		{"localhost/solo:latest", "solo"},
		{".bpf.o", "gadget"},
	} {
		if got := sourceName(c.gadget); got != c.want {
			t.Errorf("sourceName(%q) = %q, want %q", c.gadget, got, c.want)
		}
	}
}

// TestRunConfigIsTheConfigsDefaults: the config `sluice run` builds in Go
// is the one the config decoder makes of the same blocks, defaults and
// all, except for what run sets on purpose (no control socket). A default
// added to the decoder and not to config.DefaultAgent, DefaultQueue or
// DefaultBatch fails here.
func TestRunConfigIsTheConfigsDefaults(t *testing.T) {
	decoded, diags := config.Parse("run.hcl", []byte(`
source "gadget" "trace_exec" { gadget = "trace_exec" }
sink "stdout" "terminal" { format = "table" }
pipeline "run" {
  sources = [source.gadget.trace_exec]
  sinks   = [sink.stdout.terminal]
  queue { when_full = "drop_oldest" }
}
`))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	decoded.Agent.ControlSocket = "" // run has no control socket
	got := runConfig("trace_exec", nil, "table")
	if diff := cmp.Diff(decoded, got, cmpopts.IgnoreTypes(hcl.Range{}), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("sluice run's config (-decoded +run):\n%s", diff)
	}
}

// TestRunGadgetHelpFilters: `sluice run GADGET --help` says which filters
// the gadget runs in the kernel, leaves the filter contract's parameters
// to the filter flags, and names the container fields; `sluice run
// --help` lists the filter flags.
func TestRunGadgetHelpFilters(t *testing.T) {
	out, errOut, code := runSluice(t, "run", "trace_exec", "--help")
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	for _, want := range []string{
		"ignore_failed=bool, default false: Drop execs that failed",
		"Filters in the kernel (a filtered event costs no ring buffer space): pid, tid, uid, gid, comm, mntns, cgroup",
		"filename: Path as passed to the syscall",
		"container.name",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "targ_pid") {
		t.Error("help lists the filter contract's parameters; the filter flags set them")
	}
	out, errOut, _ = runSluice(t, "run", "--help")
	if usage := out + errOut; !strings.Contains(usage, "--container NAME") || !strings.Contains(usage, "--filter EXPR") {
		t.Errorf("sluice run --help lacks the filter flags:\n%s", out+errOut)
	}
}

// TestRunFilterFlags: --comm filters in the kernel, --filter on the host,
// --fields selects the keys; events that do not pass never show.
func TestRunFilterFlags(t *testing.T) {
	testutil.RequireBPF(t)
	cmd := exec.Command(sluiceBin, "run", "trace_exec", "-o", "json", "--comm", "echo", "--filter", "args~keep", "--fields", "comm,args")
	var out, errb testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(out.String(), "keep-echo") {
		if time.Now().After(deadline) {
			t.Fatalf("no echo event within 15s; stderr:\n%s", errb.String())
		}
		exec.Command("/bin/true", "keep-true").Run() // comm true: kernel-filtered
		exec.Command("/bin/echo", "drop-echo").Run() // args: host-filtered
		exec.Command("/bin/echo", "keep-echo").Run() // passes both
		time.Sleep(100 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line != `{"comm":"echo","args":["/bin/echo","keep-echo"]}` && !strings.Contains(line, `"type":"loss"`) {
			t.Errorf("unexpected line %q", line)
		}
	}
}
