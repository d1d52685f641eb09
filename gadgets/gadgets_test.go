package gadgets

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.yaml.in/yaml/v3"
)

func TestBuiltinsMatchFolders(t *testing.T) {
	srcs, err := filepath.Glob("*/program.bpf.c")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, s := range srcs {
		want = append(want, filepath.Dir(s))
	}
	var got []string
	for _, b := range Builtins() {
		got = append(got, b.Name)
		if b.Description == "" || len(b.Object) == 0 {
			t.Errorf("builtin %s: empty description or object", b.Name)
		}
		if _, err := os.Stat(filepath.Join(b.Name, "README.md")); err != nil {
			t.Errorf("builtin %s: %v", b.Name, err)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Builtins() names vs folders with program.bpf.c (-want +got):\n%s", diff)
	}
	if !slices.IsSorted(got) {
		t.Errorf("Builtins() not sorted: %v", got)
	}
	if _, ok := Lookup("no_such_gadget"); ok {
		t.Error("Lookup(no_such_gadget) succeeded")
	}
}

func TestObjectsAreCopies(t *testing.T) {
	a, _ := Lookup("trace_exec")
	a.Object[0] ^= 0xff
	b, _ := Lookup("trace_exec")
	if b.Object[0] != 0x7f {
		t.Fatal("mutating one Lookup result changed another: objects must be copies")
	}
}

func TestTestObject(t *testing.T) {
	for _, name := range []string{"plain_libbpf", "typed_ringbuf", "verifier_reject"} {
		obj, err := TestObject(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(obj, []byte("\x7fELF")) {
			t.Errorf("TestObject(%s) is not an ELF object", name)
		}
	}
	if _, err := TestObject("missing"); err == nil {
		t.Error("TestObject(missing) succeeded")
	}
}

// typeName renders a BTF type the way the decoder keys on it: typedef
// names are kept, arrays show their length.
func typeName(typ btf.Type) string {
	switch v := typ.(type) {
	case *btf.Typedef:
		return v.Name
	case *btf.Array:
		return fmt.Sprintf("[%d]%s", v.Nelems, typeName(v.Type))
	case *btf.Struct:
		return "struct " + v.Name
	case *btf.Enum:
		return "enum " + v.Name
	case *btf.Int:
		return v.Name
	}
	return fmt.Sprintf("%T", typ)
}

// contracts lists, per built-in, the event fields other packages and users
// rely on: names and the BTF types that decide their rendering.
var contracts = map[string]map[string]string{
	"trace_exec": {
		"timestamp": "gadget_timestamp", "mntns_id": "gadget_mntns_id",
		"pid": "gadget_pid", "ppid": "gadget_ppid", "uid": "gadget_uid", "gid": "gadget_gid",
		"comm": "[16]gadget_comm", "filename": "[256]char", "ret": "gadget_ret",
		"args": "[1792]gadget_strlist", "__args_len": "__u32",
	},
	"trace_open": {
		"timestamp": "gadget_timestamp", "mntns_id": "gadget_mntns_id",
		"pid": "gadget_pid", "uid": "gadget_uid", "comm": "[16]gadget_comm",
		"path": "[256]char", "flags": "gadget_file_flags", "mode": "gadget_file_mode",
		"ret": "gadget_ret",
	},
	"trace_tcpconnect": {
		"timestamp": "gadget_timestamp", "mntns_id": "gadget_mntns_id",
		"pid": "gadget_pid", "uid": "gadget_uid", "comm": "[16]gadget_comm",
		"saddr": "struct gadget_l3endpoint_t", "daddr": "struct gadget_l3endpoint_t",
		"sport": "__u16", "dport": "__u16", "family": "enum family",
	},
	"trace_signal": {
		"timestamp": "gadget_timestamp", "mntns_id": "gadget_mntns_id",
		"pid": "gadget_pid", "uid": "gadget_uid", "comm": "[16]gadget_comm",
		"tpid": "__s32", "sig": "gadget_signal", "ret": "gadget_ret",
	},
	"snapshot_process": {
		"timestamp": "gadget_timestamp", "comm": "[16]gadget_comm", "pid": "gadget_pid", "tid": "gadget_tid", "ppid": "gadget_ppid",
		"uid": "gadget_uid", "gid": "gadget_gid", "mntns_id": "gadget_mntns_id", "started": "gadget_timestamp", "exe": "[256]char",
	},
	"snapshot_socket": {
		"netns_id": "gadget_netns_id", "src": "struct gadget_l4endpoint_t", "dst": "struct gadget_l4endpoint_t",
		"state": "enum socket_state", "uid": "gadget_uid", "ino": "__u64",
	},
	"top_file": {
		"comm": "[16]gadget_comm", "mntns_id": "gadget_mntns_id", "file": "[256]char", "type": "enum file_type",
		"reads": "__u64", "writes": "__u64", "rbytes": "__u64", "wbytes": "__u64",
	},
	"top_tcp": {
		"comm": "[16]gadget_comm", "mntns_id": "gadget_mntns_id", "sent": "__u64", "received": "__u64",
	},
	"profile_blockio": {"latency": "[27]gadget_histogram_slot__u32"},
	"trace_dns": {
		"timestamp": "gadget_timestamp", "mntns_id": "gadget_mntns_id",
		"pid": "gadget_pid", "tid": "gadget_tid", "uid": "gadget_uid", "gid": "gadget_gid", "comm": "[16]gadget_comm",
		"src": "struct gadget_l4endpoint_t", "dst": "struct gadget_l4endpoint_t", "qr": "enum dns_qr", "id": "__u16",
		"qtype": "enum dns_qtype", "rcode": "enum dns_rcode", "answers": "__u16", "latency_ns": "__u64", "name": "[256]char",
	},
	"trace_exit": {
		"timestamp": "gadget_timestamp", "mntns_id": "gadget_mntns_id",
		"pid": "gadget_pid", "tid": "gadget_tid", "ppid": "gadget_ppid", "uid": "gadget_uid", "gid": "gadget_gid",
		"comm": "[16]gadget_comm", "exit_code": "__s32", "signal": "gadget_signal", "core_dumped": "bool", "duration_ns": "__u64",
	},
	"trace_tcp": {
		"timestamp": "gadget_timestamp", "mntns_id": "gadget_mntns_id",
		"pid": "gadget_pid", "tid": "gadget_tid", "uid": "gadget_uid", "gid": "gadget_gid", "comm": "[16]gadget_comm",
		"type": "enum tcp_event", "src": "struct gadget_l4endpoint_t", "dst": "struct gadget_l4endpoint_t",
	},
	"trace_bind": {
		"timestamp": "gadget_timestamp", "mntns_id": "gadget_mntns_id",
		"pid": "gadget_pid", "tid": "gadget_tid", "uid": "gadget_uid", "gid": "gadget_gid", "comm": "[16]gadget_comm",
		"addr": "struct gadget_l4endpoint_t", "fd": "__s32", "ret": "gadget_ret",
	},
	"trace_mount": {
		"timestamp": "gadget_timestamp", "mntns_id": "gadget_mntns_id",
		"pid": "gadget_pid", "tid": "gadget_tid", "uid": "gadget_uid", "gid": "gadget_gid", "comm": "[16]gadget_comm",
		"op": "enum mount_op", "src": "[256]char", "dest": "[256]char", "fs": "[32]char", "flags": "__u64", "ret": "gadget_ret",
	},
	"trace_setuid": {
		"timestamp": "gadget_timestamp", "mntns_id": "gadget_mntns_id",
		"pid": "gadget_pid", "tid": "gadget_tid", "comm": "[16]gadget_comm", "op": "enum setid_op", "args": "[3]__s32",
		"uid": "gadget_uid", "euid": "gadget_uid", "gid": "gadget_gid", "egid": "gadget_gid",
		"new_uid": "gadget_uid", "new_euid": "gadget_uid", "new_gid": "gadget_gid", "new_egid": "gadget_gid", "ret": "gadget_ret",
	},
	"trace_bpf": {
		"timestamp": "gadget_timestamp", "mntns_id": "gadget_mntns_id",
		"pid": "gadget_pid", "tid": "gadget_tid", "uid": "gadget_uid", "gid": "gadget_gid", "comm": "[16]gadget_comm",
		"cmd": "enum bpf_cmd", "prog_type": "enum bpf_prog_type", "prog_name": "[16]char", "prog_id": "__u32",
		"insn_cnt": "__u32", "attach_type": "enum bpf_attach_type", "target": "[64]char", "ret": "gadget_ret", "__prog_fd": "__s32",
	},
}

var params = map[string][]string{
	"snapshot_process": {"threads"},
	"snapshot_socket":  {"listening_only"},
	"profile_blockio":  {"reads_only", "writes_only"},
	"top_file":         {"all_files"},
	"top_tcp":          nil,
	"trace_dns":        {"dns_port"},
	"trace_bind":       {"ignore_failed"},
	"trace_bpf":        {"all_commands", "ignore_failed"},
	"trace_exec":       {"ignore_failed"},
	"trace_exit":       {"failed_only"},
	"trace_mount":      {"ignore_failed"},
	"trace_open":       {"ignore_failed", "target_pid"},
	"trace_setuid":     {"changes_only"},
	"trace_signal":     {"failed_only", "ignore_self"},
	"trace_tcp":        nil,
	"trace_tcpconnect": nil,
}

// filterParams are the parameters sluice/filter.h declares, which every
// built-in has besides its own.
var filterParams = []string{"targ_comm", "targ_gid", "targ_pid", "targ_tid", "targ_uid"}

// unfiltered are the built-ins without the filter contract: their
// elements are not about processes.
var unfiltered = map[string]bool{"snapshot_socket": true, "profile_blockio": true}

// filterGlobals are the rest of sluice/filter.h's contract with user space.
var filterGlobals = []string{"gadget_filter_by_mntns", "gadget_filter_by_cgroup", "gadget_filter_exclude_pid"}

func loadSpec(t *testing.T, obj []byte) *ebpf.CollectionSpec {
	t.Helper()
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(obj))
	if err != nil {
		t.Fatalf("parse object: %v", err)
	}
	return spec
}

func eventStruct(t *testing.T, spec *ebpf.CollectionSpec) *btf.Struct {
	t.Helper()
	var st *btf.Struct
	if err := spec.Types.TypeByName("event", &st); err != nil {
		t.Fatalf("find struct event in BTF: %v", err)
	}
	return st
}

// output is a built-in's one output: its kind, the name its gadget.yaml
// documents it under, the struct of its elements and its marker.
type output struct {
	kind, name, elem, marker string
	key                      string // a map iterator's key struct
}

// outputs lists the built-ins that are not tracers of struct event on
// ring buffer events.
var outputs = map[string]output{
	"snapshot_process": {"iter", "processes", "process", "__ig_iter_type_processes", ""},
	"snapshot_socket":  {"iter", "sockets", "socket_entry", "__ig_iter_type_sockets", ""},
	"top_file":         {"mapiter", "files", "file_stat", "__ig_mapiter_files___stats", "file_key"},
	"top_tcp":          {"mapiter", "tcp", "conn_stat", "__ig_mapiter_tcp___stats", "conn_key"},
	"profile_blockio":  {"mapiter", "blockio", "hist", "__ig_mapiter_blockio___latencies", "hist_key"},
	"trace_dns":        {"socket", "trace_dns", "event", "gadget_tracer_trace_dns___events___event", ""},
}

func outputOf(name string) output {
	if o, ok := outputs[name]; ok {
		return o
	}
	return output{"tracer", name, "event", fmt.Sprintf("gadget_tracer_%s___events___event", name), ""}
}

// elemStruct finds the struct a built-in's output holds.
func elemStruct(t *testing.T, spec *ebpf.CollectionSpec, name string) *btf.Struct {
	t.Helper()
	var st *btf.Struct
	if err := spec.Types.TypeByName(outputOf(name).elem, &st); err != nil {
		t.Fatalf("find struct %s in BTF: %v", outputOf(name).elem, err)
	}
	return st
}

// TestContracts checks, without privileges, what user space reads from each
// built-in: the IG markers, the output maps, the params and the field types.
func TestContracts(t *testing.T) {
	for _, b := range Builtins() {
		t.Run(b.Name, func(t *testing.T) {
			spec := loadSpec(t, b.Object)
			out := outputOf(b.Name)

			fields := map[string]string{}
			for _, m := range elemStruct(t, spec, b.Name).Members {
				fields[m.Name] = typeName(m.Type)
			}
			if diff := cmp.Diff(contracts[b.Name], fields); diff != "" {
				t.Errorf("struct %s fields (-want +got):\n%s", out.elem, diff)
			}
			if _, ok := spec.Variables[out.marker]; !ok {
				t.Errorf("missing marker variable %s", out.marker)
			}
			if out.kind == "tracer" || out.kind == "socket" {
				for _, v := range []string{"__gadget_tracer_type_" + b.Name, "gadget_map_tracer_events"} {
					if _, ok := spec.Variables[v]; !ok {
						t.Errorf("missing marker variable %s", v)
					}
				}
			}
			var gotParams []string
			for name := range spec.Variables {
				if p, ok := strings.CutPrefix(name, "gadget_param_"); ok {
					gotParams = append(gotParams, p)
					if v := spec.Variables[p]; v == nil || !v.Constant() {
						t.Errorf("param %s has no const volatile variable", p)
					}
				}
			}
			wantParams := slices.Clone(params[b.Name])
			if !unfiltered[b.Name] {
				wantParams = append(wantParams, filterParams...)
			}
			slices.Sort(wantParams)
			slices.Sort(gotParams)
			if diff := cmp.Diff(wantParams, gotParams); diff != "" {
				t.Errorf("params (-want +got):\n%s", diff)
			}

			for _, v := range filterGlobals {
				if unfiltered[b.Name] {
					break
				}
				if spec.Variables[v] == nil || !spec.Variables[v].Constant() {
					t.Errorf("filter: no const volatile %s", v)
				}
			}
			for _, m := range []string{"gadget_mntns_filter_map", "gadget_cgroup_filter_map", "gadget_filter_discarded"} {
				if unfiltered[b.Name] {
					break
				}
				if spec.Maps[m] == nil {
					t.Errorf("filter: no map %s", m)
				}
			}

			if out.kind == "tracer" || out.kind == "socket" {
				if m := spec.Maps["events"]; m == nil || m.Type != ebpf.RingBuf {
					t.Errorf("events is not a ring buffer: %v", m)
				}
				lost := spec.Maps["events_lost_samples"]
				if lost == nil || lost.Type != ebpf.PerCPUArray || lost.MaxEntries != 1 || lost.ValueSize != 8 {
					t.Errorf("events_lost_samples is not a 1-entry per-CPU u64 array: %v", lost)
				}
			}

			for _, p := range optionalPrograms(spec) {
				if spec.Programs[p] == nil {
					t.Errorf("GADGET_OPTIONAL names unknown program %s", p)
				}
			}
			for name, p := range spec.Programs {
				want := map[string]ebpf.ProgramType{"tracer": ebpf.TracePoint, "mapiter": ebpf.TracePoint, "iter": ebpf.Tracing, "socket": ebpf.SocketFilter}[out.kind]
				// A socket filter gadget attributes packets with tracepoints.
				if p.Type != want && !(out.kind == "socket" && p.Type == ebpf.TracePoint) {
					t.Errorf("program %s: type %v, want %v", name, p.Type, want)
				}
			}
		})
	}
}

func TestFamilyEnum(t *testing.T) {
	b, _ := Lookup("trace_tcpconnect")
	var fam *btf.Enum
	if err := loadSpec(t, b.Object).Types.TypeByName("family", &fam); err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, v := range fam.Values {
		got[v.Name] = v.Value
	}
	if diff := cmp.Diff(map[string]uint64{"AF_INET": 2, "AF_INET6": 10}, got); diff != "" {
		t.Errorf("enum family (-want +got):\n%s", diff)
	}
}

func TestOptionalMarkers(t *testing.T) {
	b, _ := Lookup("trace_open")
	got := optionalPrograms(loadSpec(t, b.Object))
	if diff := cmp.Diff([]string{"trace_enter_open", "trace_exit_open"}, got); diff != "" {
		t.Errorf("optional programs of trace_open (-want +got):\n%s", diff)
	}
}

// TestPlainObjectsKeepEventType guards the property the plain-object tests
// of other packages rely on: struct event is in BTF although nothing marks
// it as the event type.
func TestPlainObjectsKeepEventType(t *testing.T) {
	for _, name := range []string{"plain_libbpf", "typed_ringbuf"} {
		obj, err := TestObject(name)
		if err != nil {
			t.Fatal(err)
		}
		spec := loadSpec(t, obj)
		st := eventStruct(t, spec)
		if st.Size != 32 || len(st.Members) != 3 {
			t.Errorf("%s: struct event has size %d and %d members, want 32 and 3", name, st.Size, len(st.Members))
		}
		for v := range spec.Variables {
			if strings.HasPrefix(v, "gadget_") {
				t.Errorf("%s: unexpected gadget marker %s", name, v)
			}
		}
		if rb := spec.Maps["rb"]; rb == nil || rb.Type != ebpf.RingBuf {
			t.Errorf("%s: rb is not a ring buffer", name)
		}
	}
}

// optionalPrograms lists the programs named by GADGET_OPTIONAL markers.
func optionalPrograms(spec *ebpf.CollectionSpec) []string {
	var out []string
	for name := range spec.Variables {
		if p, ok := strings.CutPrefix(name, "gadget_optional_"); ok {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// TestMetadataDocumentsEverything keeps each built-in's gadget.yaml true:
// it names the gadget, documents every parameter (the filter contract's
// aside, which sluice documents itself) with its real default, and every
// field of its event.
func TestMetadataDocumentsEverything(t *testing.T) {
	for _, b := range Builtins() {
		t.Run(b.Name, func(t *testing.T) {
			var md struct {
				Name        string
				Description string
				DataSources map[string]struct {
					Fields map[string]any
				} `yaml:"datasources"`
				Params map[string]map[string]struct {
					DefaultValue string `yaml:"defaultValue"`
					Description  string
				}
			}
			if err := yaml.Unmarshal(b.Metadata, &md); err != nil {
				t.Fatalf("gadget.yaml: %v", err)
			}
			if md.Name != b.Name || md.Description != b.Description {
				t.Errorf("gadget.yaml names %q (%q), want %q (%q)", md.Name, md.Description, b.Name, b.Description)
			}
			spec := loadSpec(t, b.Object)
			var fields []string
			members := elemStruct(t, spec, b.Name).Members
			if key := outputOf(b.Name).key; key != "" {
				var st *btf.Struct
				if err := spec.Types.TypeByName(key, &st); err != nil {
					t.Fatal(err)
				}
				members = append(slices.Clone(st.Members), members...)
			}
			for _, m := range members {
				if !strings.HasPrefix(m.Name, "__") {
					fields = append(fields, m.Name)
				}
			}
			var documented []string
			for f := range md.DataSources[outputOf(b.Name).name].Fields {
				documented = append(documented, f)
			}
			slices.Sort(fields)
			slices.Sort(documented)
			if diff := cmp.Diff(fields, documented); diff != "" {
				t.Errorf("fields documented in gadget.yaml (-struct event +documented):\n%s", diff)
			}
			var docParams []string
			for p, doc := range md.Params["ebpf"] {
				docParams = append(docParams, p)
				if doc.Description == "" {
					t.Errorf("param %s has no description", p)
				}
				if v := spec.Variables[p]; v != nil {
					if got := defaultText(v.Value); got != doc.DefaultValue {
						t.Errorf("param %s: gadget.yaml says default %q, the program has %q", p, doc.DefaultValue, got)
					}
				}
			}
			slices.Sort(docParams)
			if diff := cmp.Diff(params[b.Name], docParams, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("params documented in gadget.yaml (-program +documented):\n%s", diff)
			}
		})
	}
}

// defaultText renders a bool or unsigned integer parameter's initial value
// the way gadget.yaml writes defaults.
func defaultText(b []byte) string {
	if len(b) == 1 {
		return fmt.Sprint(b[0] != 0)
	}
	var n uint64
	for i := len(b) - 1; i >= 0; i-- {
		n = n<<8 | uint64(b[i])
	}
	return fmt.Sprint(n)
}
