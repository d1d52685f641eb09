package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/nats-io/nats.go"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// cmdSubscribe prints the events published on a subject as JSON lines,
// decoding msgpack payloads, so the default config's bus can be watched
// without other tools. Run as the agent's user, it finds the embedded
// server's read-only credentials itself (subscribeAuth).
func cmdSubscribe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("subscribe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("server", nats.DefaultURL, "NATS server `URL`")
	count := fs.Int("n", 0, "exit after this many messages (0: until interrupted)")
	nkeyFile := fs.String("nkey", "", "authenticate with this NKey seed `FILE`")
	credsFile := fs.String("creds", "", "authenticate with this NATS creds `FILE`")
	dataDir := fs.String("data-dir", config.DefaultDataDir, "the agent's data `DIR`, where the embedded server's read-only credentials are found")
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		fmt.Fprintln(stderr, "usage: sluice subscribe [--server URL] [-n N] [--nkey FILE | --creds FILE | --data-dir DIR] SUBJECT   (e.g. 'sluice.>')")
		return errUsage
	}
	nc, err := connectSubscriber(*url, *nkeyFile, *credsFile, *dataDir)
	if err != nil {
		return err
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
			line = appendEventLines(line[:0], m)
			if _, err := stdout.Write(line); err != nil {
				return err
			}
		}
	}
	return nil
}

// appendEventLines renders a message's events as JSON lines: one for a
// single event, one per event of a batch (a msgpack array or JSON lines).
func appendEventLines(dst []byte, m *nats.Msg) []byte {
	start := len(dst)
	undecodable := func(err error) []byte {
		return fmt.Appendf(dst[:start], `{"subject":%q,"undecodable":%q}`+"\n", m.Subject, err.Error())
	}
	data := m.Data
	switch m.Header.Get("Content-Type") {
	case "application/json":
		return append(append(dst, bytes.TrimRight(data, "\n")...), '\n')
	case "application/x-ndjson":
		dst = append(dst, data...)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			dst = append(dst, '\n')
		}
		return dst
	case "application/vnd.sluice.msgpack-array":
		n, rest, err := codec.ReadArrayHeader(data)
		if err != nil {
			return undecodable(err)
		}
		for range n {
			size, err := codec.Skip(rest)
			if err != nil {
				return undecodable(err)
			}
			if dst, err = codec.AppendJSON(dst, rest[:size]); err != nil {
				return undecodable(err)
			}
			dst = append(dst, '\n')
			rest = rest[size:]
		}
		return dst
	}
	dst, err := codec.AppendJSON(dst, data)
	if err != nil {
		return undecodable(err)
	}
	return append(dst, '\n')
}
