package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
)

// rawReadMain is `sluicebench rawread`: the raw ceiling of the synthetic
// producer, a bare cilium/ebpf ring buffer reader of the synthetic gadget
// with nothing of sluice around it. It loads the object, sizes the ring
// as sluice would, attaches the tracepoint and reads records (ReadInto,
// with the same poll deadline as sluice's readers) without looking at
// them. It prints "ready" once attached, then answers every line on stdin
// with "records=N lost=M" (M: the gadget's lost-samples counter), and
// exits when stdin closes. It runs as a process of its own so that its CPU
// time and memory are measured as the agent's are.
func rawReadMain(args []string) error {
	fs := flag.NewFlagSet("rawread", flag.ExitOnError)
	object := fs.String("object", "", "the synthetic gadget object")
	ring := fs.Int("ring", 0, "ring buffer bytes (a power of two)")
	poll := fs.Duration("poll", 5*time.Millisecond, "read deadline, as sluice's poll interval")
	tgid := fs.Uint("tgid", 0, "the producer's process (the gadget's target_tgid)")
	jsonPath := fs.String("json", "", "render each record as the JSON line sluice writes and append it to this file (jsonLineWriter); records then counts the records written")
	size := fs.Int("size", 64, "record bytes, for -json")
	useCodec := fs.Bool("codec", false, "with -json, render with sluice's BTF decoder and JSON encoder instead of by hand (rawcodec)")
	fs.Parse(args)
	if err := rlimit.RemoveMemlock(); err != nil {
		return err
	}
	spec, err := ebpf.LoadCollectionSpec(*object)
	if err != nil {
		return err
	}
	if *ring > 0 {
		spec.Maps["events"].MaxEntries = uint32(*ring)
	}
	if err := spec.Variables["target_tgid"].Set(uint32(*tgid)); err != nil {
		return fmt.Errorf("set target_tgid: %w", err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return fmt.Errorf("load %s: %w", *object, err)
	}
	defer coll.Close()
	tp, err := link.Tracepoint("syscalls", "sys_enter_getpgid", coll.Programs["synth_burst"], nil)
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	defer tp.Close()
	rd, err := ringbuf.NewReader(coll.Maps["events"])
	if err != nil {
		return err
	}
	defer rd.Close()

	var records atomic.Uint64
	done := make(chan error, 2)
	var lines *jsonLineWriter
	if *jsonPath != "" {
		f, err := os.OpenFile(*jsonPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		lines = newJSONLineWriter(*size, f, func(n int) { records.Add(uint64(n)) }, done)
		if *useCodec {
			var event *btf.Struct
			if err := spec.Types.TypeByName("event", &event); err != nil {
				return fmt.Errorf("the event struct of %s: %w", *object, err)
			}
			if err := lines.useCodec(event); err != nil {
				return err
			}
		}
	}
	go func() {
		var rec ringbuf.Record
		var n uint64
		for {
			rd.SetDeadline(time.Now().Add(*poll))
			err := rd.ReadInto(&rec)
			switch {
			case err == nil && lines != nil:
				lines.add(rec.RawSample)
				continue
			case err == nil:
				n++
				if n&255 == 0 {
					records.Store(n)
				}
				continue
			case errors.Is(err, os.ErrDeadlineExceeded):
				if lines != nil {
					lines.flush()
				} else {
					records.Store(n)
				}
				continue
			case errors.Is(err, os.ErrClosed):
				if lines != nil {
					lines.close()
				}
				done <- nil
			default:
				done <- err
			}
			return
		}
	}()
	lostMap := coll.Maps["events_lost_samples"]
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var lost []uint64
		var total uint64
		if err := lostMap.Lookup(uint32(0), &lost); err != nil {
			return err
		}
		for _, v := range lost {
			total += v
		}
		fmt.Printf("records=%d lost=%d\n", records.Load(), total)
	}
	rd.Close()
	return <-done
}
