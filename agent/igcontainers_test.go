package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/internal/podmantest"
	"github.com/sluice-dev/sluice/internal/testutil"
)

func mntNSOf(t *testing.T, pid int) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/mnt", pid), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// igProbeMeta declares ig_wasm's module parameters, probe among them.
const igProbeMeta = `name: ig_wasm
params:
  ebpf:
    target_tgid:
      key: pid
  wasm:
    drop_who:
      key: drop_who
    tag:
      key: tag
      defaultValue: "0"
    probe:
      key: probe
      description: mount namespace ids the module asks shouldDiscardMntnsID about
`

// TestIGModuleContainerFilter runs ig_wasm's Inspektor Gadget module (Go
// and C) on the kernel with a source selecting the containers "web" and
// "late" by name, among real Podman containers, where the gadget filters
// mount namespaces in the kernel (ig_wasm_filter: IG's filter contract)
// and where it cannot and the agent filters on the host (ig_wasm). Either
// way shouldDiscardMntnsID agrees with the filter: it keeps the events'
// own namespaces and web's, and discards the host's and the unselected
// container db's; it keeps late's once late starts. The module's
// containers data source reports web and late as they start (CREATED)
// and late when it stops (DELETED), never db.
func TestIGModuleContainerFilter(t *testing.T) {
	testutil.RequireBPF(t)
	p := podmantest.Start(t)
	for _, c := range []struct{ gadget, module string }{
		{"ig_wasm_filter", "ig_wasm_go"}, {"ig_wasm_filter", "ig_wasm_c"}, {"ig_wasm", "ig_wasm_go"},
	} {
		t.Run(c.gadget+"/"+c.module, func(t *testing.T) {
			kernel := c.gadget == "ig_wasm_filter"
			web, db, late := marker("web"), marker("db"), marker("late")
			webC, dbC := p.RunContainer(t, web, nil), p.RunContainer(t, db, nil)
			webNS, dbNS, hostNS := mntNSOf(t, webC.PID), mntNSOf(t, dbC.PID), mntNSOf(t, os.Getpid())

			dir := t.TempDir()
			obj, err := gadgets.TestObject(c.gadget)
			if err != nil {
				t.Fatal(err)
			}
			elf := filepath.Join(dir, "ig_wasm.bpf.o")
			if err := os.WriteFile(elf, obj, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "gadget.yaml"), []byte(igProbeMeta), 0o644); err != nil {
				t.Fatal(err)
			}
			module, _ := filepath.Abs(filepath.Join("..", "wasmstages", "testdata", c.module+".wasm"))
			f := parseFile(t, t.TempDir(), fmt.Sprintf(`
agent {
  name           = "wl"
  shutdown_grace = "5s"
  filter_self    = false
  containers { runtimes = [%q] }
}
source "gadget" "sc" {
  gadget = %q
  wasm   = %q
  params = { probe = "%d,%d,%d" }
  filter { containers = [%q, %q] }
}
sink "stdout" "out" { format = "json" }
pipeline "p" {
  sources = [source.gadget.sc]
  sinks   = [sink.stdout.out]
}
`, p.Socket, elf, module, hostNS, dbNS, webNS, web, late))
			ta := startAgent(t, f, Options{})

			// renice reads the priority of the process first:
			// getpriority(PRIO_PROCESS, 1) in the container (the test
			// image links no renice applet).
			renice := func(c *podmantest.Container) func() {
				return func() { p.Run(t.Context(), "exec", c.ID, "/bin/busybox", "renice", "-n", "0", "-p", "1") }
			}
			callIn := func(ns uint64) func(string) bool {
				return func(out string) bool { return callOf(t, out, ns) != nil }
			}
			ta.waitForOutput("a getpriority call in "+web, 30*time.Second, renice(webC), callIn(webNS))
			ev := callOf(t, ta.out.String(), webNS)
			if ev["discard"] != false || ev["probe_discard"] != "1,1,0" {
				t.Errorf("in web: discard = %v, probe_discard = %v; want false and 1,1,0 (host and db discarded, web kept)", ev["discard"], ev["probe_discard"])
			}
			if ev["container.name"] != web {
				t.Errorf("the event the module changed lost its container identity: container.name = %v", ev["container.name"])
			}
			if js, _ := ev["proc_json"].(string); !strings.Contains(js, `"mntns_id":`+fmt.Sprint(webNS)) || !strings.Contains(js, `"comm":"busybox"`) {
				t.Errorf("proc_json (the struct proc, read with fieldGetStruct) = %s", js)
			}
			lateC := p.RunContainer(t, late, nil)
			lateNS := mntNSOf(t, lateC.PID)
			if kernel {
				// The kernel lets late's calls through once its namespace
				// is in the filter's set, which the module reads.
				ta.waitForOutput("a getpriority call in "+late, 30*time.Second, renice(lateC), callIn(lateNS))
			} else {
				// The host filter keeps late's calls once the container
				// stage resolved late; the module's answer follows the
				// resolver, which may learn of late after a first call.
				ta.waitForOutput("a getpriority call in "+late+" the module keeps", 30*time.Second, renice(lateC), func(out string) bool {
					return slices.ContainsFunc(callsOf(t, out, lateNS), func(ev map[string]any) bool { return ev["discard"] == false })
				})
			}
			// db's calls never pass; a last call in web decides the ones
			// before it.
			p.Exec(t, dbC, "/bin/busybox", "renice", "-n", "0", "-p", "1")
			if kernel {
				if _, err := p.Run(t.Context(), "rm", "-f", "-t", "0", lateC.ID); err != nil {
					t.Fatal(err)
				}
				ta.waitForOutput("late's DELETED event", 30*time.Second, func() {}, func(out string) bool {
					return seenContainer(t, out, "DELETED", late) != nil
				})
			}
			out := ta.stop()
			if ev := callOf(t, out, dbNS); ev != nil {
				t.Errorf("a call in db, which the source does not select, passed: %v", ev)
			}
			for _, ns := range []uint64{webNS, lateNS} {
				for _, ev := range callsOf(t, out, ns) {
					if ev["discard"] != false && (kernel || ns == webNS) {
						t.Errorf("a call the filter kept, which shouldDiscardMntnsID discards: %v", ev)
					}
				}
			}
			if !kernel {
				// The module's own events carry no container and do not
				// pass a host-side container filter.
				return
			}
			for _, want := range []struct{ typ, name string }{{"CREATED", web}, {"CREATED", late}} {
				ev := seenContainer(t, out, want.typ, want.name)
				if ev == nil {
					t.Errorf("no %s event of %s from the containers data source:\n%s", want.typ, want.name, out)
					continue
				}
				if ev["container_discard"] != false {
					t.Errorf("%s %s: shouldDiscardMntnsID of its namespace = %v; want false", want.typ, want.name, ev["container_discard"])
				}
			}
			if ev := seenContainer(t, out, "CREATED", web); ev != nil && jsonUint(t, ev["container_mntns"]) != webNS {
				t.Errorf("web's mntns_id from the containers data source: %v; want %d", ev["container_mntns"], webNS)
			}
			if ev := seenContainer(t, out, "CREATED", db); ev != nil {
				t.Errorf("the containers data source reported db, which the source does not select: %v", ev)
			}
		})
	}
}

// callsOf returns the call events whose process is in mount namespace ns.
func callsOf(t *testing.T, out string, ns uint64) []map[string]any {
	var evs []map[string]any
	for _, ev := range syscallEvents(t, out) {
		if ev["who"] != nil && ev["proc.mntns_id"] != nil && jsonUint(t, ev["proc.mntns_id"]) == ns {
			evs = append(evs, ev)
		}
	}
	return evs
}

// callOf returns the first call event of mount namespace ns.
func callOf(t *testing.T, out string, ns uint64) map[string]any {
	if evs := callsOf(t, out, ns); len(evs) > 0 {
		return evs[0]
	}
	return nil
}

// seenContainer finds the module's report of a container event.
func seenContainer(t *testing.T, out, typ, name string) map[string]any {
	for _, ev := range syscallEvents(t, out) {
		if ev["container_event"] == typ && ev["container_name"] == name {
			return ev
		}
	}
	return nil
}
