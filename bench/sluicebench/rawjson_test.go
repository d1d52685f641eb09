package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"
)

// TestRawCodecRendersAsRawJSON: the two references of the JSON targets
// write the same lines from the same records, so that they compare work,
// not output: rawjson by hand, rawcodec with sluice's decoder and encoder.
// The times may differ by the clock readings each takes of the boot
// offset; every other key and value is the same.
func TestRawCodecRendersAsRawJSON(t *testing.T) {
	for _, size := range []int{64, 256} {
		t.Run(strconv.Itoa(size)+"B", func(t *testing.T) {
			spec, err := btf.LoadSpec(filepath.Join("..", "gadgets", "synth"+strconv.Itoa(size)+".bpf.o"))
			if err != nil {
				t.Fatal(err)
			}
			var event *btf.Struct
			if err := spec.TypeByName("event", &event); err != nil {
				t.Fatal(err)
			}
			records := make([][]byte, 3)
			for i := range records {
				rec := make([]byte, size)
				ne := binary.NativeEndian
				ne.PutUint64(rec[0:], 5_000_000_000+uint64(i/2)) // two records of one burst share a timestamp
				ne.PutUint64(rec[8:], uint64(1000+i))
				ne.PutUint32(rec[16:], 4242)
				ne.PutUint32(rec[20:], 4243+uint32(i))
				copy(rec[24:40], "sluicebench")
				ne.PutUint32(rec[40:], 256)
				ne.PutUint32(rec[44:], uint32(i))
				if size == 64 {
					ne.PutUint64(rec[48:], uint64(i)*2654435761)
					ne.PutUint64(rec[56:], 3)
				} else {
					copy(rec[48:], "/var/lib/sluice/bench/synthetic/record/data.db")
				}
				records[i] = rec
			}
			byHand := renderLines(t, size, nil, records)
			withCodec := renderLines(t, size, event, records)
			if len(byHand) != len(records) || len(withCodec) != len(records) {
				t.Fatalf("rendered %d and %d lines of %d records", len(byHand), len(withCodec), len(records))
			}
			for i := range records {
				a, b := byHand[i], withCodec[i]
				if len(a) != len(b) {
					t.Errorf("record %d: keys %v by hand, %v with the codec", i, keysOf(a), keysOf(b))
				}
				for k, va := range a {
					vb, ok := b[k]
					switch {
					case !ok:
						t.Errorf("record %d: the codec's line lacks %q", i, k)
					case k == "time" || k == "timestamp":
						ta, errA := time.Parse(time.RFC3339Nano, va.(string))
						tb, errB := time.Parse(time.RFC3339Nano, vb.(string))
						if errA != nil || errB != nil || ta.Sub(tb).Abs() > time.Millisecond {
							t.Errorf("record %d: %s %v by hand, %v with the codec", i, k, va, vb)
						}
					case va != vb:
						t.Errorf("record %d: %s %v by hand, %v with the codec", i, k, va, vb)
					}
				}
			}
		})
	}
}

// renderLines renders records through a jsonLineWriter, with the codec
// when event is set, and returns the lines it wrote, decoded.
func renderLines(t *testing.T, size int, event btf.Type, records [][]byte) []map[string]any {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	done := make(chan error, 1)
	w := newJSONLineWriter(size, f, func(int) {}, done)
	if event != nil {
		if err := w.useCodec(event); err != nil {
			t.Fatal(err)
		}
	}
	for _, rec := range records {
		w.add(rec)
	}
	w.close()
	select {
	case err := <-done:
		t.Fatal(err)
	default:
	}
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var lines []map[string]any
	for sc := bufio.NewScanner(r); sc.Scan(); {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
