package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// ControlClient talks to an agent's control API on its unix socket. Safe
// for concurrent use.
type ControlClient struct {
	socket string
	hc     *http.Client
}

// NewControlClient returns a client of the agent listening on socket.
func NewControlClient(socket string) *ControlClient {
	return &ControlClient{socket: socket, hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableCompression: true,
	}}}
}

// Socket returns the socket the client talks to.
func (c *ControlClient) Socket() string { return c.socket }

func (c *ControlClient) do(ctx context.Context, method, path string, query url.Values) (*http.Response, error) {
	u := "http://sluice" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var oe *net.OpError
		if errors.As(err, &oe) {
			return nil, errNoAgent(c.socket, oe.Err)
		}
		return nil, errNoAgent(c.socket, err)
	}
	return resp, nil
}

// apiFailure turns an error response into an error.
func apiFailure(resp *http.Response) error {
	var e apiError
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return errors.New(e.Error)
	}
	return fmt.Errorf("agent answered %s", resp.Status)
}

// Status asks the agent for its status.
func (c *ControlClient) Status(ctx context.Context) (*Status, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/status", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, apiFailure(resp)
	}
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	return &st, nil
}

// Reload asks the agent to reload its config. A refused config is a
// result (OK false, with its diagnostics), not an error.
func (c *ControlClient) Reload(ctx context.Context) (*ReloadResult, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/reload", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnprocessableEntity {
		return nil, apiFailure(resp)
	}
	var res ReloadResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return nil, fmt.Errorf("read reload result: %w", err)
	}
	return &res, nil
}

// TapRequest says what to tap.
type TapRequest struct {
	Edge     string
	Pipeline string  // "" for every pipeline that has the edge
	Limit    int     // events; 0 for no limit
	Sample   float64 // fraction of events in (0, 1]; 0 for all
}

// Tap streams the events passing an edge to fn until the limit, ctx ends
// (nil then), the agent's pipeline stops, or fn fails.
func (c *ControlClient) Tap(ctx context.Context, req TapRequest, fn func(TapLine) error) error {
	q := url.Values{"edge": {req.Edge}}
	if req.Pipeline != "" {
		q.Set("pipeline", req.Pipeline)
	}
	if req.Limit > 0 {
		q.Set("limit", strconv.Itoa(req.Limit))
	}
	if req.Sample > 0 {
		q.Set("sample", strconv.FormatFloat(req.Sample, 'g', -1, 64))
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/tap", q)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return apiFailure(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var line TapLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return fmt.Errorf("read tap: %w", err)
		}
		if err := fn(line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("read tap: %w", err)
	}
	return nil
}

// WaitReady polls the agent until its control API answers, for scripts
// that start an agent and then steer it.
func (c *ControlClient) WaitReady(ctx context.Context) error {
	for {
		st, err := c.Status(ctx)
		if err == nil && st.Ready {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return err
			}
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
