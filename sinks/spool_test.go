package sinks

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

func rec(i int) []byte { return []byte(fmt.Sprintf("record-%06d", i)) }

// drain consumes the whole spool, in order.
func drain(t *testing.T, s *Spool) [][]byte {
	t.Helper()
	var all [][]byte
	for {
		id, recs, ok, err := s.Oldest()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return all
		}
		all = append(all, recs...)
		if err := s.Consumed(id); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSpoolOrderAndRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, SpoolOptions{MaxBytes: 1 << 20, DropOldest: false})
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	for i := 0; i < 20000; i++ {
		want = append(want, rec(i))
	}
	if n, _, err := s.Append(want[:10000]); err != nil || n != 10000 {
		t.Fatalf("append: %d, %v", n, err)
	}
	s.Close()
	// A restart: the same directory, the rest appended after.
	s, err = OpenSpool(dir, SpoolOptions{MaxBytes: 1 << 20, DropOldest: false})
	if err != nil {
		t.Fatal(err)
	}
	if n, _, err := s.Append(want[10000:]); err != nil || n != 10000 {
		t.Fatalf("append after restart: %d, %v", n, err)
	}
	got := drain(t, s)
	if len(got) != len(want) {
		t.Fatalf("drained %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("record %d = %q, want %q", i, got[i], want[i])
		}
	}
	if s.Len() != 0 {
		t.Errorf("spool holds %d bytes after draining", s.Len())
	}
}

func TestSpoolLimits(t *testing.T) {
	t.Run("drop_newest", func(t *testing.T) {
		s, _ := OpenSpool(t.TempDir(), SpoolOptions{MaxBytes: 64 << 10, DropOldest: false})
		var recs [][]byte
		for i := 0; i < 10000; i++ {
			recs = append(recs, rec(i))
		}
		n, _, err := s.Append(recs)
		if !errors.Is(err, ErrSpoolFull) || n == 0 || n == len(recs) {
			t.Fatalf("stored %d of %d, err %v: want a partial store refused with ErrSpoolFull", n, len(recs), err)
		}
		if s.Len() > 64<<10 {
			t.Errorf("spool grew to %d bytes past its 64 KiB limit", s.Len())
		}
		got := drain(t, s)
		if len(got) != n || !bytes.Equal(got[0], rec(0)) {
			t.Errorf("kept %d records starting %q; want the first %d", len(got), got[0], n)
		}
	})
	t.Run("drop_oldest", func(t *testing.T) {
		s, _ := OpenSpool(t.TempDir(), SpoolOptions{MaxBytes: 256 << 10, DropOldest: true})
		var deleted int64
		for i := 0; i < 40000; i += 10 {
			batch := make([][]byte, 0, 10)
			for j := i; j < i+10; j++ {
				batch = append(batch, rec(j))
			}
			_, n, err := s.Append(batch)
			if err != nil {
				t.Fatal(err)
			}
			deleted += n
		}
		if s.Len() > 256<<10 {
			t.Errorf("spool grew to %d bytes past its limit", s.Len())
		}
		got := drain(t, s)
		if !bytes.Equal(got[len(got)-1], rec(39999)) || bytes.Equal(got[0], rec(0)) {
			t.Errorf("kept %q..%q; want the newest records", got[0], got[len(got)-1])
		}
		if deleted+int64(len(got)) != 40000 {
			t.Errorf("deleted %d + kept %d records != the 40000 appended", deleted, len(got))
		}
	})
	t.Run("torn tail", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := OpenSpool(dir, SpoolOptions{MaxBytes: 1 << 20, DropOldest: false})
		s.Append([][]byte{rec(1), rec(2)})
		s.Close()
		segs, _ := filepath.Glob(filepath.Join(dir, "*"+spoolSuffix))
		f, _ := os.OpenFile(segs[0], os.O_APPEND|os.O_WRONLY, 0)
		f.Write([]byte{200, 0, 0, 0, 'x'}) // a record cut by a crash
		f.Close()
		s, _ = OpenSpool(dir, SpoolOptions{MaxBytes: 1 << 20, DropOldest: false})
		if got := drain(t, s); len(got) != 2 {
			t.Errorf("drained %d records, want the 2 whole ones", len(got))
		}
	})
}

// TestSpoolRecordRoundTrip: a spooled message of every content type comes
// back with its subject, headers, dedup id, payload and event count.
func TestSpoolRecordRoundTrip(t *testing.T) {
	for _, ctype := range spoolContentTypes {
		for _, id := range []string{"", "h.b.r.exec.1-exec.3.n3"} {
			m := newOutMsg("sluice.h.exec", ctype, id, []byte("payload"))
			m.first, m.end = 4, 7
			got, err := decodeSpooled(encodeSpooled(m))
			if err != nil {
				t.Fatalf("%s %q: %v", ctype, id, err)
			}
			if got.msg.Subject != m.msg.Subject || got.msg.Header.Get(headerContentType) != ctype || got.msg.Header.Get(headerFormat) != FormatVersion ||
				got.id[0] != id || got.msg.Header.Get(jetstream.MsgIDHeader) != id || string(got.msg.Data) != "payload" || got.events != 3 {
				t.Errorf("%s %q: decoded %+v, want %+v with 3 events", ctype, id, got.msg, m.msg)
			}
		}
	}
	if _, err := decodeSpooled([]byte{spoolRecordVersion<<4 | byte(len(spoolContentTypes)), 1, 0, 0, 0, 0, 0, 0, 0}); err == nil {
		t.Error("unknown content type decoded")
	}
}
