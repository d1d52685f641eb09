package sinks

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// mixedBatches are batches of events of three sources in turns, each
// source's events of its own shape, with values that vary from event to
// event (times, sequence numbers, strings needing escapes) and some that
// do not, and now and then an event of another shape.
func mixedBatches() [][]pipeline.Event {
	var batches [][]pipeline.Event
	seq := uint64(0)
	for b := range 8 {
		var batch []pipeline.Event
		for i := range 60 {
			seq++
			var ev pipeline.Event
			switch i % 3 {
			case 0:
				ev.Data = codec.AppendMapHeader(nil, 4)
				ev.Data = codec.AppendString(codec.AppendString(ev.Data, "time"), fmt.Sprintf("2026-12-03T15:53:%02d.%09dZ", b, seq))
				ev.Data = codec.AppendString(codec.AppendString(ev.Data, "source"), "synth")
				ev.Data = codec.AppendUint(codec.AppendString(ev.Data, "seq"), seq*seq*seq)
				ev.Data = codec.AppendUint(codec.AppendString(ev.Data, "flags"), 0)
				ev.Source, ev.Seq = "synth", seq
			case 1:
				ev = openEvent(seq, []string{"cat", "we\"ird\n", "é☃"}[int(seq)%3], fmt.Sprintf("/tmp/%d", seq%5), -int64(seq%3))
			default:
				ev.Data = codec.AppendMapHeader(nil, 2)
				ev.Data = codec.AppendString(codec.AppendString(ev.Data, "source"), "exec")
				if seq%7 == 0 { // another shape now and then
					ev.Data = codec.AppendMapHeader(nil, 1)
				}
				ev.Data = codec.AppendFloat64(codec.AppendString(ev.Data, "load"), float64(seq)/3)
				ev.Source, ev.Seq = "exec", seq
			}
			batch = append(batch, ev)
		}
		batches = append(batches, batch)
	}
	return batches
}

// wantJSONLines is what the sinks must write for batches: each event's
// codec.AppendJSON, a line each.
func wantJSONLines(t *testing.T, batches [][]pipeline.Event) []byte {
	var want []byte
	for _, batch := range batches {
		for _, ev := range batch {
			var err error
			if want, err = codec.AppendJSON(want, ev.Data); err != nil {
				t.Fatal(err)
			}
			want = append(want, '\n')
		}
	}
	return want
}

// TestSinksJSONOfInterleavedSources: the stdout and file sinks, whose
// encoders learn the shape of each source's events, write exactly what
// codec.AppendJSON makes of each event when sources take turns.
func TestSinksJSONOfInterleavedSources(t *testing.T) {
	batches := mixedBatches()
	want := wantJSONLines(t, batches)
	t.Run("stdout", func(t *testing.T) {
		var out bytes.Buffer
		s, err := NewStdout("console", &out, StdoutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		for _, batch := range batches {
			if err := s.Write(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Errorf("stdout sink wrote\n%s\nwant\n%s", out.Bytes(), want)
		}
	})
	t.Run("file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "events.jsonl")
		s, err := NewFile("f", FileOptions{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		for _, batch := range batches {
			if err := s.Write(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("file sink wrote\n%s\nwant\n%s", got, want)
		}
	})
}

func TestEncodersOneEncoderPerSource(t *testing.T) {
	var e encoders
	a, b := e.of("a"), e.of("b")
	if a == b || e.of("a") != a || e.of("b") != b {
		t.Fatal("sources a and b do not each keep their own encoder")
	}
	for i := range maxEncoders + 5 {
		e.of(fmt.Sprint("s", i))
	}
	if len(e.bySource) != maxEncoders || e.of("one more") != &e.shared || e.of("a") != a {
		t.Errorf("%d encoders: want at most %d, the sources past them sharing one", len(e.bySource), maxEncoders)
	}
}
