package sinks

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/internal/testutil"
)

func rec(i int) []byte { return []byte(fmt.Sprintf("record-%06d", i)) }

// drain consumes the whole spool, in order.
func drain(t *testing.T, s *Spool) [][]byte {
	t.Helper()
	var all [][]byte
	for {
		seg, ok, err := s.Oldest()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return all
		}
		all = append(all, seg.Records...)
		if err := s.Consumed(seg.ID); err != nil {
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
		data, _ := os.ReadFile(segs[0])
		f, _ := os.OpenFile(segs[0], os.O_APPEND|os.O_WRONLY, 0)
		// A record cut by a crash: the segment's marker, a length, 1 byte.
		f.Write(append(append([]byte{}, data[segmentHeaderLen-4:segmentHeaderLen]...), 200, 0, 0, 0, 1, 2, 3, 4, 'x'))
		f.Close()
		s, _ = OpenSpool(dir, SpoolOptions{MaxBytes: 1 << 20, DropOldest: false})
		seg, _, _ := s.Oldest()
		if len(seg.Records) != 2 || seg.Damage.Regions != 0 {
			t.Errorf("read %d records and %s, want the 2 whole ones and no damage (a torn tail is no loss)", len(seg.Records), seg.Damage)
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
			pub, want := got.natsMsg(""), m.natsMsg("")
			if pub.Subject != want.Subject || pub.Header.Get(headerContentType) != ctype || pub.Header.Get(headerFormat) != FormatVersion ||
				got.id[0] != id || pub.Header.Get(jetstream.MsgIDHeader) != id || string(pub.Data) != "payload" || got.events != 3 {
				t.Errorf("%s %q: decoded %+v, want %+v with 3 events", ctype, id, pub, want)
			}
		}
	}
	if _, err := decodeSpooled([]byte{spoolRecordVersion<<4 | byte(len(spoolContentTypes)), 1, 0, 0, 0, 0, 0, 0, 0}); err == nil {
		t.Error("unknown content type decoded")
	}
}

// TestSpoolResyncsAfterDamage damages records in the middle of a segment
// (the length field of one, a flipped byte in the payload of another): the
// reader skips exactly those, counts them, and returns every other record,
// where a reader that trusts lengths loses the rest of the segment.
func TestSpoolResyncsAfterDamage(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, SpoolOptions{MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	const total = 305
	var want [][]byte
	for i := range total {
		want = append(want, rec(i))
	}
	if n, _, err := s.Append(want); err != nil || n != total {
		t.Fatalf("append: %d, %v", n, err)
	}
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("%d segments, want 1", len(segs))
	}
	data, _ := os.ReadFile(segs[0])
	// The 8 bytes before record 100's payload hold its length (the last 4);
	// set them all to 0xff.
	at := bytes.Index(data, rec(100))
	for i := at - 8; i < at; i++ {
		data[i] = 0xff
	}
	data[bytes.Index(data, rec(200))+3] ^= 0x20 // "reCord-000200"
	if err := os.WriteFile(segs[0], data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = OpenSpool(dir, SpoolOptions{MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	seg, _, err := s.Oldest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range seg.Records {
		got = append(got, string(r))
	}
	var wantKept []string
	for i, r := range want {
		if i != 100 && i != 200 {
			wantKept = append(wantKept, string(r))
		}
	}
	if diff := cmp.Diff(wantKept, got); diff != "" {
		t.Errorf("records read (-want +got):\n%s", diff)
	}
	if seg.Damage.Regions != 2 || seg.Damage.Events != 2 || seg.Damage.Bytes == 0 {
		t.Errorf("damage %s, want 2 regions of 1 event each", seg.Damage)
	}
}

// TestSpoolReadsLegacySegments: segments an older agent wrote (format 1,
// "<n>.seg", length-prefixed records without checksums) are replayed
// first, then the new ones.
func TestSpoolReadsLegacySegments(t *testing.T) {
	dir := t.TempDir()
	var legacy []byte
	for i := range 3 {
		legacy = binary.LittleEndian.AppendUint32(legacy, uint32(len(rec(i))))
		legacy = append(legacy, rec(i)...)
	}
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d.seg", 4)), legacy, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSpool(dir, SpoolOptions{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Events(); got != 3 {
		t.Errorf("Events() = %d, want the legacy segment's 3", got)
	}
	if _, _, err := s.Append([][]byte{rec(3)}); err != nil {
		t.Fatal(err)
	}
	got := drain(t, s)
	if len(got) != 4 || !bytes.Equal(got[0], rec(0)) || !bytes.Equal(got[3], rec(3)) {
		t.Errorf("drained %q, want records 0..3 in order", got)
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "*.seg")); len(names) != 0 {
		t.Errorf("segments left after draining: %v", names)
	}
}

// TestSpoolLock: a second process (here: a second open) on the same spool
// directory is refused with a clear error while the first has it open.
func TestSpoolLock(t *testing.T) {
	dir := t.TempDir()
	first, err := OpenSpool(dir, SpoolOptions{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenSpool(dir, SpoolOptions{MaxBytes: 1 << 20})
	if !errors.Is(err, ErrSpoolLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second open: %v; want ErrSpoolLocked naming pid %d", err, os.Getpid())
	}
	first.Close()
	second, err := OpenSpool(dir, SpoolOptions{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatalf("open after the first closed: %v", err)
	}
	second.Close()
}

// TestSpoolDiskFull fills a real (tmpfs) file system under the spool. An
// append that runs out of space part way stores none of its records (what
// reached the file is cut off again), so the count is exact: every record
// reported stored is read back, none reported lost is. Further failing
// appends leave no segment behind each, and once space is freed appending
// resumes.
func TestSpoolDiskFull(t *testing.T) {
	testutil.RequireRoot(t, "mount a small tmpfs")
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	spoolDir := filepath.Join(dir, "spool")
	s, err := OpenSpool(spoolDir, SpoolOptions{MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var stored [][]byte
	appendAll := func(batch [][]byte) error {
		n, _, err := s.Append(batch)
		stored = append(stored, batch[:n]...)
		return err
	}
	if err := appendAll([][]byte{rec(0), rec(1)}); err != nil {
		t.Fatal(err)
	}
	// Leave about 200 KiB free, then append twice that in one call: the
	// first buffers written reach the file before the disk is full.
	ballast := filepath.Join(dir, "ballast")
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ballast, make([]byte, int64(st.Bavail)*st.Bsize-200<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	var big [][]byte
	for i := range 2000 {
		big = append(big, append(rec(1000+i), bytes.Repeat([]byte("x"), 200)...))
	}
	if err := appendAll(big); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append of 400 KiB into 200 KiB: %v; want ENOSPC", err)
	}
	for i := range 20 {
		if err := appendAll([][]byte{append(rec(10+i), make([]byte, 300<<10)...)}); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("append %d on a full disk: %v; want ENOSPC", i, err)
		}
	}
	segs, _ := filepath.Glob(filepath.Join(spoolDir, "*.seg"))
	if len(segs) != 1 {
		t.Errorf("%d segments after 21 failed appends; want the 1 written before (no new one per failure)", len(segs))
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	if err := appendAll([][]byte{rec(2)}); err != nil {
		t.Fatalf("append after freeing space: %v", err)
	}
	got := drain(t, s)
	if len(got) != len(stored) {
		t.Fatalf("read back %d records; %d were reported stored", len(got), len(stored))
	}
	for i := range got {
		if !bytes.Equal(got[i], stored[i]) {
			t.Fatalf("record %d is %q, want %q", i, got[i][:min(20, len(got[i]))], stored[i][:min(20, len(stored[i]))])
		}
	}
}

// FuzzSpoolSegment feeds the segment reader arbitrary bytes, and damaged
// copies of well-formed segments: it must never panic, return only records
// whose frame checks out, account for every byte it did not return as a
// record (or a torn tail), and return every record of a well-formed
// segment that the damage did not touch.
func FuzzSpoolSegment(f *testing.F) {
	f.Add([]byte("record-1\x00record-two\x00\x00r3"), uint16(30), byte(0xff))
	f.Add([]byte{}, uint16(0), byte(0))
	f.Add(bytes.Repeat([]byte("ab"), 100), uint16(5), byte(1))
	f.Fuzz(func(t *testing.T, content []byte, at uint16, flip byte) {
		// Arbitrary bytes as a segment.
		scanSegment(content, nil, func([]byte) {})

		// A well-formed segment of the records content splits into at
		// NULs, then one byte flipped.
		recs := bytes.Split(content, []byte{0})
		marker := [4]byte{0xa5, 0x5a, 0x3c, 0xc3}
		seg := appendSegmentHeader(nil, marker)
		starts := make([]int, len(recs))
		for i, r := range recs {
			starts[i] = len(seg)
			seg = append(seg, marker[:]...)
			seg = binary.LittleEndian.AppendUint32(seg, uint32(len(r)))
			seg = binary.LittleEndian.AppendUint32(seg, crc32.Update(crc32.Checksum(seg[len(seg)-8:], castagnoli), castagnoli, r))
			seg = append(seg, r...)
		}
		var got [][]byte
		if dmg := scanSegment(seg, nil, func(r []byte) { got = append(got, r) }); dmg.Regions != 0 || len(got) != len(recs) {
			t.Fatalf("well-formed segment: %d of %d records, %s", len(got), len(recs), dmg)
		}
		pos := int(at) % len(seg)
		seg[pos] ^= flip | 1
		got = got[:0]
		dmg := scanSegment(seg, nil, func(r []byte) { got = append(got, bytes.Clone(r)) })
		var read int64
		for _, r := range got {
			read += int64(frameHeaderSize + len(r))
		}
		// Every byte is the header, a record or damage, or a torn tail.
		if read+dmg.Bytes > int64(len(seg)) {
			t.Fatalf("read %d + skipped %d bytes of a %d-byte segment", read, dmg.Bytes, len(seg))
		}
		// A damaged header costs nothing: the first frame names the marker.
		for i, r := range recs {
			end := len(seg)
			if i+1 < len(recs) {
				end = starts[i+1]
			}
			if pos >= starts[i] && pos < end {
				continue // the damaged record
			}
			if !slices.ContainsFunc(got, func(g []byte) bool { return bytes.Equal(g, r) }) {
				t.Fatalf("record %d (%q), untouched by the damage at byte %d, was not read back", i, r, pos)
			}
		}
	})
}
