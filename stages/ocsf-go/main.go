// Command ocsf-go is the Go SDK version of the built-in ocsf stage
// (stages/ocsf, in C), kept as an example of FlatMap and the
// Writer and for the parity test. It is a stage that maps sluice's built-in gadget events to the
// Open Cybersecurity Schema Framework (OCSF 1.1) for SIEM ingestion:
//
//	trace_exec       -> Process Activity (class 1007), Launch
//	trace_open       -> File System Activity (class 1001), Open
//	trace_tcpconnect -> Network Activity (class 4001), Open
//
// Each mapped event replaces its input (same source and sequence number).
// Fields OCSF has no place for go under unmapped. Events of other gadgets
// pass on unchanged, or are dropped with others = "drop".
//
//	params = {
//	  others   = "pass"   # or "drop"
//	  envelope = true     # keep host, source, gadget and seq at the top
//	                      # level too, for subject templates; false for
//	                      # strict OCSF
//	}
package main

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/sluice-dev/sluice/sdk/go/sluice"
)

type params struct {
	Others   string `sluice:"others"`
	Envelope *bool  `sluice:"envelope"`
}

var (
	dropOthers bool
	envelope   = true
	w          sluice.Writer
	scratch    []byte // reused for values built from several fields
	mapped     *sluice.Counter
)

// class describes one OCSF class and activity the stage emits.
type class struct {
	classUID, categoryUID, activityID int64
	className, categoryName, activity string
}

var (
	processLaunch = class{1007, 1, 1, "Process Activity", "System Activity", "Launch"}
	fileOpen      = class{1001, 1, 14, "File System Activity", "System Activity", "Open"}
	networkOpen   = class{4001, 4, 1, "Network Activity", "Network Activity", "Open"}
)

func init() {
	mapped = sluice.NewCounter("mapped")
	sluice.OnInit(func(p sluice.Params) error {
		var cfg params
		if err := p.Decode(&cfg); err != nil {
			return err
		}
		switch cfg.Others {
		case "", "pass":
		case "drop":
			dropOthers = true
		default:
			return fmt.Errorf("params.others: %q; want \"pass\" or \"drop\"", cfg.Others)
		}
		if cfg.Envelope != nil {
			envelope = *cfg.Envelope
		}
		return nil
	})
	sluice.FlatMap(func(ev *sluice.Event, out *sluice.Output) {
		var c class
		switch string(ev.StringBytes("gadget")) {
		case "trace_exec":
			c = processLaunch
		case "trace_open":
			c = fileOpen
		case "trace_tcpconnect":
			c = networkOpen
		default:
			if !dropOthers {
				out.Emit(ev)
			}
			return
		}
		w.Reset()
		w.BeginMap()
		common(ev, c)
		switch c.classUID {
		case 1007:
			processFields(ev)
		case 1001:
			fileFields(ev)
		case 4001:
			networkFields(ev)
		}
		w.EndMap()
		out.EmitBytes(ev, w.Bytes())
		mapped.Inc()
	})
}

// common writes the attributes every class has: classification, time,
// status, metadata, device and actor.
func common(ev *sluice.Event, c class) {
	w.Key("class_uid").Int(c.classUID).Key("class_name").String(c.className)
	w.Key("category_uid").Int(c.categoryUID).Key("category_name").String(c.categoryName)
	w.Key("activity_id").Int(c.activityID).Key("activity_name").String(c.activity)
	w.Key("type_uid").Int(c.classUID*100 + c.activityID).Key("type_name").String(c.className + ": " + c.activity)
	w.Key("severity_id").Int(1).Key("severity").String("Informational")

	when := ev.StringBytes("time")
	if t, ok := ev.Time("time"); ok {
		w.Key("time").Int(t.UnixMilli())
	}
	ret := ev.Get("ret")
	if ret.Exists() {
		if n, _ := ret.Int(); n < 0 {
			errName := ev.Get("ret_error")
			w.Key("status_id").Int(2).Key("status").String("Failure").Key("status_code").Raw(errName)
			name, _ := errName.StringBytes()
			scratch = append(strconv.AppendInt(append(scratch[:0], "errno "...), -n, 10), " ("...)
			scratch = append(append(scratch, name...), ')')
			w.Key("status_detail").StringBytes(scratch)
		} else {
			w.Key("status_id").Int(1).Key("status").String("Success")
		}
	}

	w.Key("metadata").BeginMap()
	w.Key("version").String("1.1.0")
	w.Key("product").BeginMap().Key("name").String("sluice").Key("vendor_name").String("sluice").EndMap()
	w.Key("log_name").Raw(ev.Get("gadget"))
	w.Key("original_time").StringBytes(when)
	if seq, ok := ev.Get("seq").Uint(); ok {
		w.Key("sequence").Uint(seq)
		scratch = append(append(scratch[:0], ev.StringBytes("host")...), '/')
		scratch = append(append(scratch, ev.StringBytes("source")...), '/')
		w.Key("uid").StringBytes(strconv.AppendUint(scratch, seq, 10))
	}
	w.EndMap()

	w.Key("device").BeginMap().Key("hostname").Raw(ev.Get("host")).Key("type_id").Int(0).EndMap()

	if envelope {
		for _, k := range []string{"host", "source", "gadget", "seq"} {
			if v := ev.Get(k); v.Exists() {
				w.Key(k).Raw(v)
			}
		}
	}
}

func user(ev *sluice.Event) {
	w.BeginMap()
	if uid, ok := ev.Get("uid").Uint(); ok {
		w.Key("uid").StringBytes(strconv.AppendUint(scratch[:0], uid, 10))
	}
	// The decoder names the user beside the uid ("uid:N" when the host
	// has no name for it, which is no name).
	if name := ev.StringBytes("user"); len(name) > 0 && !bytes.HasPrefix(name, []byte("uid:")) {
		w.Key("name").StringBytes(name)
	}
	w.EndMap()
}

// base is path.Base for the paths events carry, without allocating.
func base(p []byte) []byte {
	p = bytes.TrimRight(p, "/")
	if i := bytes.LastIndexByte(p, '/'); i >= 0 {
		p = p[i+1:]
	}
	if len(p) == 0 {
		return []byte("/")
	}
	return p
}

// actorProcess writes actor: the process that did it.
func actorProcess(ev *sluice.Event) {
	w.Key("actor").BeginMap()
	w.Key("process").BeginMap()
	w.Key("pid").Raw(ev.Get("pid")).Key("name").Raw(ev.Get("comm"))
	w.Key("user")
	user(ev)
	w.EndMap()
	w.Key("user")
	user(ev)
	w.EndMap()
}

func processFields(ev *sluice.Event) {
	filename := ev.StringBytes("filename")
	w.Key("process").BeginMap()
	w.Key("pid").Raw(ev.Get("pid")).Key("name").Raw(ev.Get("comm"))
	scratch = scratch[:0]
	for a := range ev.Get("args").Elems() {
		if b, ok := a.StringBytes(); ok {
			if len(scratch) > 0 {
				scratch = append(scratch, ' ')
			}
			scratch = append(scratch, b...)
		}
	}
	w.Key("cmd_line").StringBytes(scratch)
	w.Key("file").BeginMap().Key("path").StringBytes(filename).Key("name").StringBytes(base(filename)).Key("type_id").Int(1).EndMap()
	w.Key("parent_process").BeginMap().Key("pid").Raw(ev.Get("ppid")).EndMap()
	w.Key("user")
	user(ev)
	w.EndMap()
	// The actor of a launch is the parent: only its pid is known here.
	w.Key("actor").BeginMap().Key("process").BeginMap().Key("pid").Raw(ev.Get("ppid")).EndMap().Key("user")
	user(ev)
	w.EndMap()
	w.Key("unmapped").BeginMap()
	w.Key("args").Raw(ev.Get("args"))
	w.Key("gid").Raw(ev.Get("gid")).Key("gid_name").Raw(ev.Get("gid_name"))
	w.Key("mntns_id").Raw(ev.Get("mntns_id"))
	w.EndMap()
}

func fileFields(ev *sluice.Event) {
	p := ev.StringBytes("path")
	w.Key("file").BeginMap().Key("path").StringBytes(p).Key("name").StringBytes(base(p)).EndMap()
	actorProcess(ev)
	w.Key("unmapped").BeginMap()
	w.Key("flags").Raw(ev.Get("flags")).Key("mode").Raw(ev.Get("mode"))
	w.Key("fd").Raw(ev.Get("ret")).Key("mntns_id").Raw(ev.Get("mntns_id"))
	w.EndMap()
}

func networkFields(ev *sluice.Event) {
	w.Key("src_endpoint").BeginMap().Key("ip").Raw(ev.Get("saddr.addr")).Key("port").Raw(ev.Get("sport")).EndMap()
	w.Key("dst_endpoint").BeginMap().Key("ip").Raw(ev.Get("daddr.addr")).Key("port").Raw(ev.Get("dport")).EndMap()
	w.Key("connection_info").BeginMap()
	w.Key("protocol_name").String("tcp").Key("protocol_num").Int(6)
	w.Key("direction").String("Outbound").Key("direction_id").Int(2)
	if string(ev.StringBytes("family")) == "AF_INET6" {
		w.Key("protocol_ver_id").Int(6)
	} else {
		w.Key("protocol_ver_id").Int(4)
	}
	w.EndMap()
	actorProcess(ev)
	w.Key("unmapped").BeginMap().Key("mntns_id").Raw(ev.Get("mntns_id")).EndMap()
}

func main() {}
