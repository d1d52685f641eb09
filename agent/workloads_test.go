package agent

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/internal/podmantest"
	"github.com/sluice-dev/sluice/internal/testutil"
)

// events decodes the JSON lines of a stdout sink's output.
func events(out string) []map[string]any {
	var evs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			evs = append(evs, m)
		}
	}
	return evs
}

// execWith finds the exec event whose second argument is marker.
func execWith(out, marker string) map[string]any {
	for _, ev := range events(out) {
		if args, _ := ev["args"].([]any); len(args) > 1 && args[1] == marker {
			return ev
		}
	}
	return nil
}

// tryExec runs echo marker in c, logging a failure (shown if the test
// fails: an exec podman refused tells apart from an event the agent lost).
func tryExec(t *testing.T, p *podmantest.Podman, c *podmantest.Container, marker string) {
	if _, err := p.Run(t.Context(), "exec", c.ID, "/bin/echo", marker); err != nil {
		t.Logf("exec in %s: %v", c.Name, err)
	}
}

func marker(prefix string) string { return fmt.Sprintf("%s-%d", prefix, rand.Uint32()) }

// containerConfig runs trace_exec with the given source attributes,
// resolving containers through the test Podman.
func containerConfig(t *testing.T, p *podmantest.Podman, source string) string {
	t.Helper()
	return fmt.Sprintf(`
agent {
  name           = "wl"
  shutdown_grace = "5s"
  containers { runtimes = [%q] }
}
source "gadget" "exec" {
  gadget = "trace_exec"
  %s
}
sink "stdout" "out" { format = "json" }
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.out]
}
`, p.Socket, source)
}

// TestAgentContainerFilter: a source filtered on container names sees the
// execs of those containers, with their identity, including a container
// that starts after the agent; other containers and the host are
// filtered out in the kernel.
func TestAgentContainerFilter(t *testing.T) {
	testutil.RequireBPF(t)
	p := podmantest.Start(t)
	web, db, late := marker("web"), marker("db"), marker("late")
	webC := p.RunContainer(t, web, nil)
	dbC := p.RunContainer(t, db, nil)
	f := parseFile(t, t.TempDir(), containerConfig(t, p, fmt.Sprintf(`filter { containers = [%q, %q] }`, web, late)))
	ta := startAgent(t, f, Options{})

	inWeb, inDB, onHost := marker("in-web"), marker("in-db"), marker("on-host")
	ta.waitForOutput("the exec in "+web, 30*time.Second, func() {
		// The container's namespace may not be in the filter yet when the
		// first exec runs: keep trying.
		tryExec(t, p, webC, inWeb)
	}, func(out string) bool { return execWith(out, inWeb) != nil })
	ev := execWith(ta.out.String(), inWeb)
	if ev["container.name"] != web || ev["container.id"] != webC.ID || ev["container.runtime"] != "podman" || ev["container.image"] != podmantest.Image {
		t.Errorf("exec in %s: container fields %v %v %v %v", web, ev["container.name"], ev["container.id"], ev["container.runtime"], ev["container.image"])
	}

	lateC := p.RunContainer(t, late, nil)
	inLate := marker("in-late")
	ta.waitForOutput("the exec in the container started later", 30*time.Second, func() {
		tryExec(t, p, lateC, inLate)
	}, func(out string) bool { return execWith(out, inLate) != nil })

	p.Exec(t, dbC, "/bin/echo", inDB)
	exec.Command("/bin/echo", onHost).Run()
	// A last exec in web: once it is out, the two before it were decided.
	last := marker("last")
	ta.waitForOutput("the last exec in web", 30*time.Second, func() {
		tryExec(t, p, webC, last)
	}, func(out string) bool { return execWith(out, last) != nil })
	out := ta.stop()
	for _, m := range []string{inDB, onHost} {
		if ev := execWith(out, m); ev != nil {
			t.Errorf("an exec outside the selected containers passed the filter: %v", ev)
		}
	}
}

// TestAgentContainersOnly: containers_only keeps every container's events
// and none of the host's; without it, host events carry no container
// fields.
func TestAgentContainersOnly(t *testing.T) {
	testutil.RequireBPF(t)
	p := podmantest.Start(t)
	c := p.RunContainer(t, marker("any"), []string{"--label", "io.kubernetes.pod.name=pod-a", "--label", "io.kubernetes.pod.namespace=ns-a", "--label", "io.kubernetes.container.name=ctr-a"})
	f := parseFile(t, t.TempDir(), containerConfig(t, p, "containers_only = true"))
	ta := startAgent(t, f, Options{})
	inside, onHost := marker("inside"), marker("host")
	ta.waitForOutput("the exec in the container", 30*time.Second, func() {
		exec.Command("/bin/echo", onHost).Run()
		tryExec(t, p, c, inside)
	}, func(out string) bool { return execWith(out, inside) != nil })
	out := ta.stop()
	if ev := execWith(out, onHost); ev != nil {
		t.Errorf("a host exec passed containers_only: %v", ev)
	}
	ev := execWith(out, inside)
	if ev["k8s.pod"] != "pod-a" || ev["k8s.namespace"] != "ns-a" || ev["k8s.container"] != "ctr-a" {
		t.Errorf("k8s fields %v %v %v, want pod-a ns-a ctr-a", ev["k8s.pod"], ev["k8s.namespace"], ev["k8s.container"])
	}

	f = parseFile(t, t.TempDir(), containerConfig(t, p, ""))
	ta = startAgent(t, f, Options{})
	host := ta.waitForExec("host-unfiltered")
	if ev := execWith(ta.stop(), host); ev == nil || ev["container.id"] != nil {
		t.Errorf("a host exec without a filter: %v; want it, without container fields", ev)
	}
}

// TestAgentSelfFilter: by default the agent leaves its own events out (the
// test process runs the agent); filter_self = false lets them in.
func TestAgentSelfFilter(t *testing.T) {
	testutil.RequireBPF(t)
	for _, tc := range []struct {
		agentExtra string
		wantSelf   bool
	}{{"", false}, {"filter_self = false", true}} {
		t.Run(fmt.Sprintf("self=%v", tc.wantSelf), func(t *testing.T) {
			dir := t.TempDir()
			f := parseFile(t, dir, fmt.Sprintf(`
agent {
  shutdown_grace = "5s"
  containers { enabled = false }
  %s
}
source "gadget" "open" { gadget = "trace_open" }
sink "stdout" "out" { format = "json" }
pipeline "p" {
  sources = [source.gadget.open]
  sinks   = [sink.stdout.out]
}
`, tc.agentExtra))
			ta := startAgent(t, f, Options{})
			mine := filepath.Join(dir, marker("mine"))
			theirs := filepath.Join(dir, marker("theirs"))
			os.WriteFile(theirs, nil, 0o644)
			ta.waitForOutput("a child's open", 15*time.Second, func() {
				os.ReadFile(mine)
				exec.Command("/bin/cat", theirs).Run()
			}, func(out string) bool { return strings.Contains(out, theirs) })
			if got := strings.Contains(ta.stop(), mine); got != tc.wantSelf {
				t.Errorf("the agent's own open reported = %v, want %v", got, tc.wantSelf)
			}
		})
	}
}

// TestAgentHostFilter: a fields filter drops what does not match, on the
// host, counted as filtered; a gadget without the kernel filter contract
// gets its pid filter on the host too.
func TestAgentHostFilter(t *testing.T) {
	testutil.RequireBPF(t)
	dir := t.TempDir()
	f := parseFile(t, dir, `
agent {
  shutdown_grace = "5s"
  containers { enabled = false }
}
source "gadget" "exec" {
  gadget = "trace_exec"
  filter { fields = "comm==echo" }
}
sink "stdout" "out" { format = "json" }
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.out]
}
`)
	ta := startAgent(t, f, Options{})
	viaTrue, viaEcho := marker("true"), marker("echo")
	ta.waitForOutput("the echo", 15*time.Second, func() {
		exec.Command("/bin/true", viaTrue).Run()
		exec.Command("/bin/echo", viaEcho).Run()
	}, func(out string) bool { return execWith(out, viaEcho) != nil })
	out := ta.stop()
	if execWith(out, viaTrue) != nil {
		t.Error("an exec of true passed comm==echo")
	}
	if n := ta.reg.Component("stage", filterStageName).Dropped("filtered").Value(); n == 0 {
		t.Error("the host filter counted nothing as filtered")
	}

	// plain_libbpf has no filter contract: its pid filter runs on the host.
	obj, err := gadgets.TestObject("plain_libbpf")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "plain.bpf.o"), obj, 0o644); err != nil {
		t.Fatal(err)
	}
	child := exec.Command("/bin/sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	f = parseFile(t, dir, fmt.Sprintf(`
agent {
  filter_self = false
  containers { enabled = false }
}
source "gadget" "plain" {
  gadget = "./plain.bpf.o"
  filter { pid = %d }
}
sink "stdout" "out" { format = "json" }
pipeline "p" {
  sources = [source.gadget.plain]
  sinks   = [sink.stdout.out]
}
`, child.Process.Pid))
	a, diags := New(f, Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if ff := a.plan.source("plain").hostFilter; ff == nil || ff.String() != fmt.Sprintf("pid==%d", child.Process.Pid) {
		t.Errorf("plain_libbpf's host filter = %v, want pid==%d", ff, child.Process.Pid)
	}
}

// TestReloadChangesFilter: a reload that adds a fields filter to a source
// (and so a host filter to its pipeline) takes effect without a restart,
// and one that removes it lets everything through again.
func TestReloadChangesFilter(t *testing.T) {
	testutil.RequireBPF(t)
	const text = `
agent {
  data_dir       = "%DIR%"
  control_socket = "%DIR%/c.sock"
  containers { enabled = false }
}
source "gadget" "exec" {
  gadget = "trace_exec"
  %FILTER%
}
sink "stdout" "out" { format = "json" }
pipeline "p" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.out]
}
`
	r := startReloadable(t, strings.ReplaceAll(text, "%FILTER%", ""))
	r.waitForExec("before")
	r.write(t, strings.ReplaceAll(text, "%FILTER%", `filter { fields = "comm==echo" }`))
	r.reload(t)
	viaTrue, viaEcho := marker("true"), marker("echo")
	r.waitForOutput("an echo after the reload", 15*time.Second, func() {
		exec.Command("/bin/true", viaTrue).Run()
		exec.Command("/bin/echo", viaEcho).Run()
	}, func(out string) bool { return execWith(out, viaEcho) != nil })
	if execWith(r.out.String(), viaTrue) != nil {
		t.Error("an exec of true passed the filter the reload added")
	}
	r.write(t, strings.ReplaceAll(text, "%FILTER%", ""))
	r.reload(t)
	r.waitForExec("after-removal")
}
