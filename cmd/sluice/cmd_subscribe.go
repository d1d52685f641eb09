package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/nats-io/nats.go"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// cmdSubscribe prints the events published on a subject as JSON lines,
// decoding msgpack payloads, so the default config's bus can be watched
// without other tools.
func cmdSubscribe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("subscribe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("server", nats.DefaultURL, "NATS server `URL`")
	count := fs.Int("n", 0, "exit after this many messages (0: until interrupted)")
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		fmt.Fprintln(stderr, "usage: sluice subscribe [--server URL] [-n N] SUBJECT   (e.g. 'sluice.>')")
		return errUsage
	}
	nc, err := nats.Connect(*url, nats.Name("sluice subscribe"))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", *url, err)
	}
	defer nc.Close()
	msgs := make(chan *nats.Msg, 4096)
	sub, err := nc.ChanSubscribe(positional[0], msgs)
	if err != nil {
		return fmt.Errorf("subscribe to %q: %w", positional[0], err)
	}
	defer sub.Unsubscribe()
	var line []byte
	for seen := 0; *count == 0 || seen < *count; seen++ {
		select {
		case <-ctx.Done():
			return nil
		case m := <-msgs:
			line = line[:0]
			if m.Header.Get("Content-Type") == "application/json" {
				line = append(line, m.Data...)
			} else if line, err = codec.AppendJSON(line, m.Data); err != nil {
				line = fmt.Appendf(line[:0], `{"subject":%q,"undecodable":%q}`, m.Subject, err.Error())
			}
			line = append(line, '\n')
			if _, err := stdout.Write(line); err != nil {
				return err
			}
		}
	}
	return nil
}
