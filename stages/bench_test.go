package stages_test

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/wasmstages"
)

// execEvents returns n trace_exec-shaped events (19 fields, comm the
// fifteenth, user the uid's name as the decoder lays them out) whose comm
// cycles through comms.
func execEvents(n int, comms ...string) []pipeline.Event {
	out := make([]pipeline.Event, n)
	for i := range out {
		c := comms[i%len(comms)]
		out[i] = envelope("trace_exec", i+1,
			kv{"timestamp", "2026-01-02T03:04:05.123456789Z"}, kv{"timestamp_raw", 1670079468483},
			kv{"mntns_id", 4026531832}, kv{"pid", 16588}, kv{"ppid", 16524}, kv{"uid", 1000}, kv{"user", "alice"},
			kv{"gid", 1000}, kv{"gid_name", "alice"}, kv{"comm", c}, kv{"filename", "/bin/" + c}, kv{"ret", 0},
			kv{"ret_error", ""}, kv{"args", []string{c, "-c", "some args"}},
		)
	}
	return out
}

// BenchmarkExampleStages measures each example stage per event through the
// real host at batch 256 (and drop-comm at 1 and 1024): guest cost plus the
// ABI's copying. cpu-ns/event is the calling thread's CPU time, which a
// shared machine disturbs far less than ns/event; compare within one run
// (SLUICE_STAGES_BASELINE adds an older build of each stage to it).
func BenchmarkExampleStages(b *testing.B) {
	cases := []stageCase{
		{"drop-comm", map[string]any{"comms": []string{"sh", "bash"}}, []int{1, 256, 1024}},
		{"drop-comm-go", map[string]any{"comms": []string{"sh", "bash"}}, []int{1, 256, 1024}},
		{"drop-comm-rs", map[string]any{"comms": []string{"sh", "bash"}}, []int{1, 256, 1024}},
		// The decoder's user field says alice already (the host's own
		// name): the C stage passes the event on, the Go one sets it.
		{"uid-to-user", map[string]any{"users": map[string]any{"1000": "alice"}}, []int{256}},
		{"uid-to-user-go", map[string]any{"users": map[string]any{"1000": "alice"}}, []int{256}},
		// A field the events lack: every event is enriched (a copy).
		{"uid-to-user", map[string]any{"users": map[string]any{"1000": "alice"}, "target": "owner"}, []int{256}},
		{"uid-to-user-go", map[string]any{"users": map[string]any{"1000": "alice"}, "target": "owner"}, []int{256}},
		{"redact", nil, []int{256}},
		{"rate-limit", map[string]any{"rate": 1e9, "burst": 1e9}, []int{256}},
		{"ocsf", nil, []int{256}},
		{"ocsf-go", nil, []int{256}},
	}
	for _, c := range withBaseline(cases, func(c stageCase) string { return c.stage }) {
		label := c.label
		if t, ok := c.C.params["target"]; ok {
			label += fmt.Sprintf("/target=%v", t)
		}
		b.Run(label, func(b *testing.B) {
			s := newStageFrom(b, c.C.stage, c.module, c.C.params)
			for _, size := range c.C.sizes {
				b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
					in := execEvents(size, "sh", "cat", "bash", "ls")
					out := make([]pipeline.Event, 0, 2*size)
					ctx := context.Background()
					b.ReportAllocs()
					perEvent(b, size, func() {
						var err error
						if out, err = s.Process(ctx, in, out[:0]); err != nil {
							b.Fatal(err)
						}
					})
				})
			}
		})
	}
}

type stageCase struct {
	stage  string
	params map[string]any
	sizes  []int
}

// baselineCase is a case to run, on the committed module or, labelled
// NAME@baseline, on the module of the same name in $SLUICE_STAGES_BASELINE.
type baselineCase[C any] struct {
	C             C
	label, module string // module: "" for the committed one
}

// withBaseline returns cases, each followed by its run on the module of
// the same name in the directory $SLUICE_STAGES_BASELINE when that holds
// one: the way to compare two builds of a stage in one run on a shared
// machine (copy the old .wasm files there first).
func withBaseline[C any](cases []C, name func(C) string) []baselineCase[C] {
	dir := os.Getenv("SLUICE_STAGES_BASELINE")
	var out []baselineCase[C]
	for _, c := range cases {
		out = append(out, baselineCase[C]{C: c, label: name(c)})
		if dir == "" {
			continue
		}
		if p := filepath.Join(dir, name(c)+".wasm"); fileExists(p) {
			out = append(out, baselineCase[C]{C: c, label: name(c) + "@baseline", module: p})
		}
	}
	return out
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// newStageFrom loads a stage from module, or the committed one when
// module is "".
func newStageFrom(b *testing.B, name, module string, params map[string]any) *wasmstages.Stage {
	if module == "" {
		return newStage(b, name, params, 0)
	}
	s, err := wasmstages.New(context.Background(), wasmstages.Config{Name: name, Module: module, Params: params, Timeout: 10 * time.Second, Cache: cache})
	if err != nil {
		b.Fatalf("load %s: %v", module, err)
	}
	b.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// realisticExecs returns n trace_exec events whose command lines look like
// a busy build host's: mostly short commands, some long compiler and JVM
// lines (hundreds of bytes to kilobytes), and a few secrets (1 in 32)
// passed as flags, in URLs and as tokens.
func realisticExecs(n int) []pipeline.Event {
	long := strings.Fields("/usr/bin/cc -O2 -g -Wall -Wextra -fPIC -fstack-protector-strong -D_FORTIFY_SOURCE=2 " +
		"-I/usr/include/glib-2.0 -I/usr/lib/x86_64-linux-gnu/glib-2.0/include -I./include -I./src -DHAVE_CONFIG_H " +
		"-MT src/parser.o -MD -MP -MF src/.deps/parser.Tpo -c -o src/parser.o src/parser.c")
	jvm := []string{"java", "-Xmx2g", "-XX:+UseG1GC", "-Dfile.encoding=UTF-8", "-cp",
		strings.Repeat("/opt/app/lib/dependency-with-a-long-name-1.2.3.jar:", 40) + "/opt/app/app.jar", "com.example.Main", "--port=8080"}
	cmds := [][]string{
		{"ls", "-la", "/var/log"}, {"git", "status", "--short"}, {"grep", "-rn", "TODO", "src/"},
		{"sh", "-c", "make -j2 all > build.log 2>&1"}, {"cat", "/etc/os-release"}, {"sleep", "1"},
		{"python3", "-m", "pytest", "-q", "tests/test_api.py", "-k", "not slow"}, long, jvm,
		{"curl", "-sS", "-H", "Accept: application/json", "https://api.example.com/v1/items?limit=100"},
		{"systemctl", "status", "nginx.service"}, {"ps", "aux"}, {"tar", "-czf", "backup.tar.gz", "/home/alice/projects"},
		long, {"ssh", "-o", "BatchMode=yes", "deploy@10.0.0.5", "uptime"}, {"node", "server.js", "--env=production"},
	}
	secrets := [][]string{
		{"mysql", "-u", "root", "--password=s3cr3t!", "-h", "db.internal", "appdb"},
		{"curl", "-H", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "https://api.example.com/v1/me"},
		{"git", "clone", "https://alice:ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@github.com/org/repo.git"},
		{"aws", "configure", "set", "aws_access_key_id", "AKIAABCDEFGHIJKLMNOP"},
	}
	out := make([]pipeline.Event, n)
	for i := range out {
		args := cmds[i%len(cmds)]
		if i%32 == 7 {
			args = secrets[(i/32)%len(secrets)]
		}
		comm := path.Base(args[0])
		out[i] = envelope("trace_exec", i+1,
			kv{"timestamp", "2026-01-02T03:04:05.123456789Z"}, kv{"timestamp_raw", 1670079468483},
			kv{"mntns_id", 4026531832}, kv{"pid", 16588 + i}, kv{"ppid", 16524}, kv{"uid", 1000}, kv{"user", "alice"},
			kv{"gid", 1000}, kv{"gid_name", "alice"}, kv{"comm", comm}, kv{"filename", "/usr/bin/" + comm}, kv{"ret", 0},
			kv{"ret_error", ""}, kv{"args", args},
		)
	}
	return out
}

// BenchmarkRealisticExec measures the stages that read command lines on
// realisticExecs (batch 256): redact, which scans every argument, and
// ocsf, which joins them into cmd_line.
func BenchmarkRealisticExec(b *testing.B) {
	for _, c := range withBaseline([]string{"redact", "ocsf", "ocsf-go"}, func(s string) string { return s }) {
		b.Run(c.label, func(b *testing.B) {
			s := newStageFrom(b, c.C, c.module, nil)
			in := realisticExecs(256)
			bytes := 0
			for _, ev := range in {
				bytes += len(ev.Data)
			}
			out := make([]pipeline.Event, 0, 2*len(in))
			ctx := context.Background()
			b.SetBytes(int64(bytes))
			b.ReportAllocs()
			perEvent(b, len(in), func() {
				var err error
				if out, err = s.Process(ctx, in, out[:0]); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// synthEvents returns n events shaped as the benchmark's 64-byte synthetic
// records decode (bench/gadgets/synth.bpf.c): the envelope, then 11 fields,
// comm the eleventh key of 15.
func synthEvents(n int) []pipeline.Event {
	out := make([]pipeline.Event, n)
	for i := range out {
		seq := 1_000_000 + i
		ev := envelope("synth64", seq,
			kv{"timestamp", str8("2026-12-03T23:31:01.315836038Z")}, kv{"timestamp_raw", 22498701394912 + 1300*i},
			kv{"kseq", seq}, kv{"pid", 16523}, kv{"tid", 16530}, kv{"comm", "sluicebench"},
			kv{"burst", 256}, kv{"index", i % 256}, kv{"value", seq * 2654435761}, kv{"flags", 0},
		)
		// The envelope's time is a str 8 too.
		if ev.Data[6] != 0xa0|30 {
			panic("synthEvents: the envelope's time is not where it should be")
		}
		ev.Data = append(append(append(ev.Data[:0:0], ev.Data[:6]...), 0xd9, 30), ev.Data[7:]...)
		out[i] = ev
	}
	return out
}

// BenchmarkSynthKeepAll measures drop-comm as `make bench` runs it
// (null/64B/c1): the synthetic records, a comm list that names none of
// them, so every event is kept, at the batch the pipeline hands over.
func BenchmarkSynthKeepAll(b *testing.B) {
	s := newStage(b, "drop-comm", map[string]any{"comms": []string{"no-such-comm"}}, 0)
	for _, size := range []int{64, 256} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			in := synthEvents(size)
			out := make([]pipeline.Event, 0, size)
			ctx := context.Background()
			b.ReportAllocs()
			perEvent(b, size, func() {
				got, err := s.Process(ctx, in, out[:0])
				if err != nil || len(got) != size {
					b.Fatalf("kept %d of %d: %v", len(got), size, err)
				}
			})
		})
	}
}
