package sources

import (
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/perf"
)

// recordReader hides the difference between ring buffers and perf arrays.
type recordReader interface {
	SetDeadline(time.Time)
	// Read returns the next sample, or a count of samples the kernel lost.
	// The sample is valid until the next Read.
	Read() (sample []byte, lost uint64, err error)
	Close() error
}

func openReader(m *ebpf.Map, st StreamSpec, perfSize int) (recordReader, error) {
	if m == nil {
		return nil, fmt.Errorf("map not loaded")
	}
	switch st.MapType {
	case ebpf.RingBuf:
		return newRingBuffer(m.FD(), int(m.MaxEntries()))
	case ebpf.PerfEventArray:
		// A watermark lets the kernel skip most wakeups; the reader's poll
		// deadline picks up what lies below it.
		size := perfSize
		page := os.Getpagesize()
		if size < 2*page {
			size = 2 * page
		}
		r, err := perf.NewReaderWithOptions(m, size, perf.ReaderOptions{Watermark: size / 4})
		if err != nil {
			return nil, err
		}
		return &perfReader{r: r}, nil
	}
	return nil, fmt.Errorf("map type %s is not an output", st.MapType)
}

type perfReader struct {
	r   *perf.Reader
	rec perf.Record
}

func (r *perfReader) SetDeadline(t time.Time) { r.r.SetDeadline(t) }
func (r *perfReader) Close() error            { return r.r.Close() }
func (r *perfReader) Read() ([]byte, uint64, error) {
	if err := r.r.ReadInto(&r.rec); err != nil {
		return nil, 0, err
	}
	return r.rec.RawSample, r.rec.LostSamples, nil
}
