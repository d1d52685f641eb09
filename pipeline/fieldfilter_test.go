package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// filterEvent encodes the event the field filter tests match against.
func filterEvent() []byte {
	b := codec.AppendMapHeader(nil, 9)
	b = codec.AppendString(b, "comm")
	b = codec.AppendString(b, "curl")
	b = codec.AppendString(b, "ret")
	b = codec.AppendInt(b, -2)
	b = codec.AppendString(b, "pid")
	b = codec.AppendUint(b, 4242)
	b = codec.AppendString(b, "big")
	b = codec.AppendUint(b, 1<<63)
	b = codec.AppendString(b, "ok")
	b = codec.AppendBool(b, true)
	b = codec.AppendString(b, "load")
	b = codec.AppendFloat64(b, 0.75)
	b = codec.AppendString(b, "args")
	b = codec.AppendArrayHeader(b, 2)
	b = codec.AppendString(b, "/bin/curl")
	b = codec.AppendString(b, "https://example.com")
	b = codec.AppendString(b, "dst.port")
	b = codec.AppendUint(b, 443)
	b = codec.AppendString(b, "path")
	b = codec.AppendString(b, "a,b")
	return b
}

func TestFieldFilterMatch(t *testing.T) {
	ev := filterEvent()
	for _, tc := range []struct {
		expr string
		want bool
	}{
		{"comm==curl", true},
		{"comm==wget", false},
		{"comm!=wget", true},
		{"comm~^cu", true},
		{"comm!~^cu", false},
		{"comm>cat", true},
		{"ret<0", true},
		{"ret>=0", false},
		{"ret==-2", true},
		{"ret==0x10", false},
		{"pid==4242", true},
		{"pid>4000,pid<5000", true},
		{"pid>4000,pid<4100", false},
		{"pid==abc", false},
		{"pid!=abc", true},
		{"pid>-1", true},
		{"big>1", true},
		{"big==9223372036854775808", true},
		{"ret<9223372036854775808", true},
		{"ok==true", true},
		{"ok==false", false},
		{"ok!=false", true},
		{"load>0.5", true},
		{"load<=0.5", false},
		{"pid<4242.5", true},
		{"args==/bin/curl", true},
		{"args~example\\.com", true},
		{"args!=/bin/wget", true},
		{"args!~curl", false},
		{"dst.port==443", true},
		{"path==a\\,b", true},
		{"container.name==", true},
		{"container.name!=web", true},
		{"container.name==web", false},
		{"missing>1", false},
		{" comm == curl , ret < 0 ", true},
	} {
		ff, err := ParseFieldFilter(tc.expr)
		if err != nil {
			t.Errorf("ParseFieldFilter(%q): %v", tc.expr, err)
			continue
		}
		if got := ff.Match(ev); got != tc.want {
			t.Errorf("%q matches = %v, want %v", tc.expr, got, tc.want)
		}
	}
}

func TestFieldFilterAnd(t *testing.T) {
	a, _ := ParseFieldFilter("comm==curl")
	b, _ := ParseFieldFilter("ret>=0")
	if a.And(nil) != a || (*FieldFilter)(nil).And(b) != b {
		t.Error("And with nil is not the other filter")
	}
	both := a.And(b)
	if both.Match(filterEvent()) || !a.Match(filterEvent()) || both.String() != "comm==curl,ret>=0" {
		t.Errorf("comm==curl AND ret>=0 matches %v (%q); the event has ret -2", both.Match(filterEvent()), both)
	}
}

func TestFieldFilterParseErrors(t *testing.T) {
	for _, expr := range []string{"", "comm", "==curl", "comm==curl,", "comm~(", "a,b"} {
		if _, err := ParseFieldFilter(expr); err == nil {
			t.Errorf("ParseFieldFilter(%q) succeeded", expr)
		}
	}
}

func TestFilterStage(t *testing.T) {
	curl, err := ParseFieldFilter("comm==curl")
	if err != nil {
		t.Fatal(err)
	}
	st := NewFilterStage("filter", map[string]*FieldFilter{"exec": curl})
	wget := codec.AppendString(codec.AppendString(codec.AppendMapHeader(nil, 1), "comm"), "wget")
	in := []Event{
		{Data: filterEvent(), Source: "exec", Seq: 1},
		{Data: wget, Source: "exec", Seq: 2},
		{Data: wget, Source: "open", Seq: 1},             // no filter for this source
		{Data: wget, Source: "exec", Schema: LossSchema}, // loss records pass
	}
	out, err := st.Process(context.Background(), in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || out[0].Seq != 1 || out[1].Source != "open" || out[2].Kind() != KindLoss {
		t.Errorf("kept %+v, want exec#1, open#1 and the loss record", out)
	}
}

func BenchmarkFieldFilter(b *testing.B) {
	ff, err := ParseFieldFilter("comm==curl,ret<0")
	if err != nil {
		b.Fatal(err)
	}
	ev := filterEvent()
	b.ReportAllocs()
	for b.Loop() {
		if !ff.Match(ev) {
			b.Fatal("no match")
		}
	}
}

// filteringSource reports events it filtered before emitting, as a
// gadget's kernel filter does, then emits one event.
type filteringSource struct{}

func (filteringSource) Name() string { return "exec" }
func (filteringSource) Run(ctx context.Context, out Emitter) error {
	out.(FilterReporter).ReportFiltered("exec", 5)
	if err := out.Emit(ctx, []Event{{Data: []byte{0x80}, Source: "exec", Seq: 1}}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// TestReportFiltered: a source's filtered events count as received and
// dropped ("filtered"), and put no loss record in the stream.
func TestReportFiltered(t *testing.T) {
	reg := NewRegistry()
	sink := &recSink{name: "rec"}
	p, err := New(Spec{
		Name: "p", Sources: []Source{filteringSource{}}, Sinks: []Sink{sink},
		Queue: QueueConfig{MaxEvents: 64, Policy: Block}, LossInterval: time.Millisecond, Metrics: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := runAsync(ctx, p, 10*time.Second)
	src := reg.Component("source", "exec")
	waitFor(t, "the event", 10*time.Second, func() bool { evs, _ := sink.split(); return len(evs) == 1 })
	cancel()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if r, s, f := src.Received.Value(), src.Sent.Value(), src.Dropped(ReasonFiltered).Value(); r != 6 || s != 1 || f != 5 {
		t.Errorf("source received %d sent %d filtered %d, want 6, 1, 5", r, s, f)
	}
	if _, losses := sink.split(); len(losses) != 0 {
		t.Errorf("filtered events made loss records: %v", losses)
	}
}
