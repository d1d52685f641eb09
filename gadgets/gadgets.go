package gadgets

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

//go:embed */program.bpf.o */gadget.yaml
var builtinFS embed.FS

//go:embed testdata/*.bpf.o testdata/libbpf/*.bpf.o
var testFS embed.FS

//go:embed helpers/*.bpf.o
var helperFS embed.FS

// Helper returns one of the eBPF objects sluice itself runs beside gadgets:
//
//   - socket_enricher: fills Inspektor Gadget's socket map (gadget_sockets)
//     with the owner of each TCP and UDP socket (iter/task_file, and
//     bind/connect tracepoints);
//   - dispatcher: a socket filter that writes the network namespace to
//     skb->cb[0] and tail-calls a gadget's socket filter.
func Helper(name string) ([]byte, error) {
	obj, err := helperFS.ReadFile(path.Join("helpers", name+".bpf.o"))
	if err != nil {
		return nil, fmt.Errorf("read helper object %q: %w", name, err)
	}
	return obj, nil
}

// Builtin is one built-in gadget: its name (the folder under gadgets/), a
// one-line description, its eBPF ELF object (CO-RE, BTF, x86_64) and its
// metadata (Inspektor Gadget's gadget.yaml: what its params and fields
// mean).
type Builtin struct {
	Name        string
	Description string
	Object      []byte
	// Metadata is the gadget's gadget.yaml (parameter keys and
	// descriptions, field annotations).
	Metadata []byte
}

// descriptions doubles as the list of built-ins: a folder with an object but
// no description fails TestBuiltinsMatchFolders.
var descriptions = map[string]string{
	"profile_blockio":  "Block I/O latency per device as a log2 histogram in microseconds, drained every interval.",
	"snapshot_process": "Snapshot the running processes: pid, parent, credentials, mount namespace, start time and executable name.",
	"snapshot_socket":  "Snapshot the open TCP and UDP sockets (IPv4 and IPv6) with their state and owner.",
	"top_file":         "Top files by reads and writes, per process, drained every interval.",
	"top_tcp":          "Top TCP connections by bytes sent and received, per process, drained every interval.",
	"trace_dns":        "Trace DNS queries and responses (UDP, IPv4 and IPv6) with the asking process and the answer's latency.",
	"trace_exec":       "Trace process executions (execve, execveat), including failed ones.",
	"trace_exit":       "Trace process exits: exit status, killing signal, core dump and run time.",
	"trace_bind":       "Trace binds of IPv4 and IPv6 sockets to addresses and ports.",
	"trace_bpf":        "Trace eBPF program loads and attachments (bpf syscall).",
	"trace_mount":      "Trace mounts, unmounts and mount moves.",
	"trace_open":       "Trace file opens (open, openat, openat2).",
	"trace_setuid":     "Trace credential changes (set*uid, set*gid), with ids before and after.",
	"trace_signal":     "Trace signals sent with kill, tkill and tgkill.",
	"trace_tcp":        "Trace TCP connects, accepts and closes with the owning process (IPv4 and IPv6).",
	"trace_tcpconnect": "Trace outgoing TCP connection attempts (IPv4 and IPv6).",
}

// Builtins returns every built-in gadget, sorted by name.
func Builtins() []Builtin {
	names := make([]string, 0, len(descriptions))
	for name := range descriptions {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]Builtin, 0, len(names))
	for _, name := range names {
		b, ok := Lookup(name)
		if !ok {
			// The embed pattern and the description table disagree:
			// a build defect, caught by the package's tests.
			continue
		}
		out = append(out, b)
	}
	return out
}

// Lookup returns the built-in gadget called name.
func Lookup(name string) (Builtin, bool) {
	desc, ok := descriptions[name]
	if !ok {
		return Builtin{}, false
	}
	obj, err := builtinFS.ReadFile(path.Join(name, "program.bpf.o"))
	if err != nil {
		return Builtin{}, false
	}
	md, _ := builtinFS.ReadFile(path.Join(name, "gadget.yaml"))
	return Builtin{Name: name, Description: desc, Object: obj, Metadata: md}, true
}

// TestObject returns the eBPF object of a test program by name:
//
//   - plain_libbpf: a libbpf-style program with no gadget markers; its ring
//     buffer map "rb" has no value type; struct event { __u32 pid; char
//     comm[16]; __u64 value; } is in BTF; each getppid(2) emits one record
//     with pid = the caller's tgid and value = 0x1122334455667788.
//   - typed_ringbuf: the same, but "rb" is declared with
//     __type(value, struct event), which the kernel refuses on ring buffers;
//     a loader must drop the value type (cilium/ebpf does) and may use it as
//     the event type.
//   - attach_kinds: one program per non-tracepoint attach kind (raw_tp,
//     tp_btf, uprobe and uretprobe on "libc"), struct event { pid, kind,
//     comm }; see the source for what fires each kind.
//   - verifier_reject: a tracepoint program the verifier rejects (a write
//     past the end of a map value).
//   - libbpf/<name> (execsnoop, opensnoop, sigsnoop, syncsnoop, runqslower, tcpstates,
//     tcpconnect, procevents, sysregs): plain programs in the style of
//     libbpf-tools, built with DWARF; libbpf/<name>_stripped without it,
//     libbpf/syncsnoop.types a header compiled alone (DWARF only); see
//     testdata/libbpf/README.md.
//   - ig_fields: an Inspektor Gadget-style tracer with a member of every
//     special type spelled X_raw, kernel and user stacks, and IG's
//     ig_build_id map sized by ig_build_id_max_entries; one event per
//     getpgid(2) call of target_tgid (see the source for the values).
func TestObject(name string) ([]byte, error) {
	obj, err := testFS.ReadFile(path.Join("testdata", name+".bpf.o"))
	if err != nil {
		paths, _ := fs.Glob(testFS, "testdata/*.bpf.o")
		more, _ := fs.Glob(testFS, "testdata/libbpf/*.bpf.o")
		paths = append(paths, more...)
		names := make([]string, len(paths))
		for i, p := range paths {
			names[i] = strings.TrimSuffix(strings.TrimPrefix(p, "testdata/"), ".bpf.o")
		}
		return nil, fmt.Errorf("read test object %q (have %v): %w", name, names, err)
	}
	return obj, nil
}
