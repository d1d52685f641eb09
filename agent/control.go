package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// The control API: HTTP with JSON on a unix socket that only the agent's
// user (and root) may use. It never listens on TCP.
//
//	GET  /v1/status   Status
//	POST /v1/reload   ReloadResult (422 when the new config was refused)
//	GET  /v1/tap      TapLine per line (JSON lines) until the limit, the
//	                  client leaving, or the pipeline stopping; query:
//	                  edge, pipeline, limit, sample
//	GET  /healthz, /readyz, /livez   as on the metrics address

// maxSocketPath is the longest path a unix socket can have (sun_path less
// its terminating NUL).
const maxSocketPath = 107

// validateControlSocket checks the control socket's path.
func validateControlSocket(cfg *config.File) hcl.Diagnostics {
	p := cfg.Agent.ControlSocket
	if len(p) <= maxSocketPath {
		return nil
	}
	r := cfg.Agent.ControlSocketRange
	if r.Filename == "" {
		r = cfg.Agent.DefRange
	}
	return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Control socket path too long",
		Detail:  fmt.Sprintf("The control socket %s is %d bytes; a unix socket path has at most %d. Set control_socket in the agent block to a shorter path (or \"\" for no control API).", p, len(p), maxSocketPath),
		Subject: rangePtr(r)}}
}

// listenControl creates the socket at path, mode 0600, so that it is never
// visible with a wider mode: it is bound under a temporary name, made
// owner-only, then renamed into place. A stale socket (no agent answers on
// it) is replaced; a live one is an error: two agents must not share a
// data directory.
func listenControl(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create control socket directory: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another agent is listening on it (two agents must not share a data directory; set agent.control_socket)", path)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	os.Remove(tmp)
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("listen on control socket %s: %w", path, err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // it is renamed; Close removes the final path
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return &peerListener{UnixListener: ul, path: path, uid: os.Getuid()}, nil
}

// peerListener accepts only connections from the agent's own user or root
// (SO_PEERCRED), on top of the socket's mode.
type peerListener struct {
	*net.UnixListener
	path string
	uid  int
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.UnixListener.AcceptUnix()
		if err != nil {
			return nil, err
		}
		if l.allowed(c) {
			return c, nil
		}
		c.Close()
	}
}

func (l *peerListener) allowed(c *net.UnixConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return false
	}
	return cred.Uid == 0 || int(cred.Uid) == l.uid
}

func (l *peerListener) Close() error {
	err := l.UnixListener.Close()
	os.Remove(l.path)
	return err
}

// serveControl serves the control API on the socket at path until the
// stack shuts it down, after the pipelines stopped.
func (a *Agent) serveControl(ctx context.Context, path string, stack *cleanupStack) error {
	ln, err := listenControl(path)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, a.Status()) })
	mux.HandleFunc("POST /v1/reload", a.handleReload)
	mux.HandleFunc("GET /v1/tap", a.handleTap)
	a.healthRoutes(mux)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	stack.push(func(ctx context.Context) {
		shutdownCtx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if srv.Shutdown(shutdownCtx) != nil {
			srv.Close() // taps still streaming
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			a.log.Warn("control server", "error", err)
		}
	})
	a.log.Info("serving the control API", "socket", path)
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

type apiError struct {
	Error string `json:"error"`
}

func (a *Agent) handleReload(w http.ResponseWriter, r *http.Request) {
	res, err := a.Reload(r.Context())
	if err != nil {
		writeJSON(w, http.StatusConflict, apiError{err.Error()})
		return
	}
	code := http.StatusOK
	if !res.OK {
		code = http.StatusUnprocessableEntity
	}
	writeJSON(w, code, res)
}

// TapLine is one line of a tap's stream: an event, or (Dropped set, Event
// nil) how many events the tap lost so far because the reader was slow.
type TapLine struct {
	Pipeline string          `json:"pipeline,omitempty"`
	Edge     string          `json:"edge,omitempty"`
	Kind     string          `json:"kind,omitempty"` // event, loss
	Event    json.RawMessage `json:"event,omitempty"`
	Dropped  *uint64         `json:"dropped,omitempty"`
}

// Tap attaches a tap to edge in every running pipeline that has it (or in
// pipelineName only, when set). It fails when none has it, listing the
// edges there are.
func (a *Agent) Tap(edge, pipelineName string, opts pipeline.TapOptions) ([]*pipeline.Tap, error) {
	a.mu.Lock()
	var pipes []*pipeline.Pipeline
	for _, pp := range a.plan.pipelines {
		if lp := a.pipelines[pp.name]; lp != nil && (pipelineName == "" || pipelineName == pp.name) {
			pipes = append(pipes, lp.p)
		}
	}
	a.mu.Unlock()
	var taps []*pipeline.Tap
	var edges []string
	for _, p := range pipes {
		t, err := p.Tap(edge, opts)
		if errors.Is(err, pipeline.ErrNoEdge) {
			for _, e := range p.Edges() {
				edges = append(edges, p.Name()+": "+e)
			}
			continue
		}
		if err != nil {
			closeTaps(taps)
			return nil, err
		}
		taps = append(taps, t)
	}
	if len(taps) == 0 {
		if len(pipes) == 0 {
			return nil, fmt.Errorf("tap %s: no running pipeline %q", edge, pipelineName)
		}
		return nil, fmt.Errorf("tap %s: %w; the edges are: %v", edge, pipeline.ErrNoEdge, edges)
	}
	return taps, nil
}

func closeTaps(taps []*pipeline.Tap) {
	for _, t := range taps {
		t.Close()
	}
}

func (a *Agent) handleTap(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	edge := q.Get("edge")
	if edge == "" {
		writeJSON(w, http.StatusBadRequest, apiError{"tap: name an edge (source.NAME, stage.NAME.in, stage.NAME.out, sink.NAME)"})
		return
	}
	var opts pipeline.TapOptions
	limit := 0
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("tap: limit %q is not a count", s)})
			return
		}
		limit = n
	}
	if s := q.Get("sample"); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f <= 0 || f > 1 {
			writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("tap: sample %q is not a fraction in (0, 1]", s)})
			return
		}
		opts.Sample = f
	}
	taps, err := a.Tap(edge, q.Get("pipeline"), opts)
	if err != nil {
		writeJSON(w, http.StatusNotFound, apiError{err.Error()})
		return
	}
	defer closeTaps(taps)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	// One goroutine per tap merges them; this handler owns them and waits.
	type batch struct {
		t   *pipeline.Tap
		evs []pipeline.Event
	}
	merged := make(chan batch)
	stop := make(chan struct{})
	exited := make(chan struct{}, len(taps))
	for _, t := range taps {
		go func() {
			defer func() { exited <- struct{}{} }()
			for {
				select {
				case evs := <-t.C():
					select {
					case merged <- batch{t, evs}:
					case <-stop:
						return
					}
				case <-t.Done():
					return
				case <-stop:
					return
				}
			}
		}()
	}
	running := len(taps)
	defer func() {
		close(stop)
		for ; running > 0; running-- {
			<-exited
		}
	}()
	dropped := func() uint64 {
		var n uint64
		for _, t := range taps {
			n += t.Dropped()
		}
		return n
	}
	lastDropped := uint64(0)
	report := time.NewTicker(time.Second)
	defer report.Stop()
	sent := 0
	var buf []byte
	for running > 0 {
		select {
		case <-r.Context().Done():
			return
		case <-exited:
			running-- // a tap ended: its pipeline stopped
		case <-report.C:
			if n := dropped(); n != lastDropped {
				lastDropped = n
				enc.Encode(TapLine{Dropped: &n})
				if flusher != nil {
					flusher.Flush()
				}
			}
		case b := <-merged:
			for _, ev := range b.evs {
				buf, err = codec.AppendJSON(buf[:0], ev.Data)
				if err != nil {
					continue
				}
				line := TapLine{Pipeline: b.t.Pipeline(), Edge: b.t.Edge(), Kind: ev.Kind().String(), Event: json.RawMessage(buf)}
				if err := enc.Encode(line); err != nil {
					return // the client left
				}
				sent++
				if limit > 0 && sent >= limit {
					if n := dropped(); n > 0 {
						enc.Encode(TapLine{Dropped: &n})
					}
					return
				}
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
}

// errNoAgent wraps a failed connection to the control socket.
func errNoAgent(path string, err error) error {
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("no agent is listening on %s (is it running? does its agent.control_socket say another path?)", path)
	}
	if errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("cannot connect to %s: permission denied (the control socket is for the agent's user and root)", path)
	}
	return fmt.Errorf("connect to the agent at %s: %w", path, err)
}
