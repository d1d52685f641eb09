package workloads

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
	"strings"
	"time"
)

// DockerAPI is a client of the Docker Engine API on a unix socket, which
// Docker serves and Podman serves too (its Docker-compatible API, `podman
// system service`). It is safe for concurrent use.
type DockerAPI struct {
	socket string
	http   *http.Client
	// stream has no overall timeout, for the event stream.
	stream *http.Client
}

var _ Runtime = (*DockerAPI)(nil)

// requestTimeout bounds one API request; a runtime that hangs must not
// stall the resolver forever.
const requestTimeout = 5 * time.Second

// maxResponse bounds what the client reads from one API response.
const maxResponse = 16 << 20

// NewDockerAPI returns a client for the API on the unix socket at path
// ("/run/podman/podman.sock"; a "unix://" prefix is accepted).
func NewDockerAPI(path string) *DockerAPI {
	path = strings.TrimPrefix(path, "unix://")
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
	transport := &http.Transport{DialContext: dial, MaxIdleConns: 2, IdleConnTimeout: 30 * time.Second}
	return &DockerAPI{
		socket: path,
		http:   &http.Client{Transport: transport, Timeout: requestTimeout},
		stream: &http.Client{Transport: &http.Transport{DialContext: dial}},
	}
}

// Endpoint returns the socket's path.
func (d *DockerAPI) Endpoint() string { return d.socket }

// Name identifies the runtime behind the socket: "podman" when the
// version endpoint names Podman, else "docker".
func (d *DockerAPI) Name(ctx context.Context) (string, error) {
	var v struct {
		Components []struct{ Name string }
	}
	if err := d.get(ctx, "/version", &v); err != nil {
		return "", err
	}
	for _, c := range v.Components {
		if strings.Contains(strings.ToLower(c.Name), "podman") {
			return "podman", nil
		}
	}
	return "docker", nil
}

// ContainerIDs lists the ids of the containers that may have processes
// (running, paused, or created and being set up).
func (d *DockerAPI) ContainerIDs(ctx context.Context) ([]string, error) {
	var list []struct {
		ID    string `json:"Id"`
		State string
	}
	if err := d.get(ctx, "/containers/json?all=true", &list); err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(list))
	for _, c := range list {
		if c.State != "exited" && c.State != "dead" {
			ids = append(ids, c.ID)
		}
	}
	return ids, nil
}

// Containers lists the containers that have a process, with what their
// inspection says.
func (d *DockerAPI) Containers(ctx context.Context) ([]RuntimeContainer, error) {
	ids, err := d.ContainerIDs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]RuntimeContainer, 0, len(ids))
	for _, id := range ids {
		rc, err := d.Inspect(ctx, id)
		if errors.Is(err, ErrNoContainer) {
			continue // removed since the list
		}
		if err != nil {
			return nil, err
		}
		if rc.PID > 0 {
			out = append(out, rc)
		}
	}
	return out, nil
}

// ErrNoContainer is returned by Inspect for an id the runtime does not know.
var ErrNoContainer = errors.New("no such container")

// Inspect returns one container by id (a prefix or a name also do).
func (d *DockerAPI) Inspect(ctx context.Context, id string) (RuntimeContainer, error) {
	var c struct {
		ID    string `json:"Id"`
		Name  string
		Image string // the image's id
		State struct {
			Pid int
		}
		Config struct {
			Image  string // as the user named it
			Labels map[string]string
		}
	}
	if err := d.get(ctx, "/containers/"+url.PathEscape(id)+"/json", &c); err != nil {
		return RuntimeContainer{}, err
	}
	image := c.Config.Image
	if image == "" {
		image = c.Image
	}
	return RuntimeContainer{
		ID:     c.ID,
		Name:   strings.TrimPrefix(c.Name, "/"),
		Image:  image,
		Labels: c.Config.Labels,
		PID:    c.State.Pid,
	}, nil
}

// Watch calls changed with the container's id after every container
// lifecycle event (create, start, die, destroy, ...) until ctx is done or
// the stream breaks. It returns nil when ctx is done, else the error that
// ended the stream.
func (d *DockerAPI) Watch(ctx context.Context, changed func(id string)) error {
	filters := url.QueryEscape(`{"type":["container"]}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://runtime/events?filters="+filters, nil)
	if err != nil {
		return err
	}
	resp, err := d.stream.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("watch %s: %w", d.socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("watch %s: %s", d.socket, resp.Status)
	}
	dec := json.NewDecoder(bufio.NewReader(resp.Body))
	for {
		var ev struct {
			Type  string
			ID    string `json:"id"`
			Actor struct {
				ID string
			}
		}
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("watch %s: the runtime closed the event stream", d.socket)
			}
			return fmt.Errorf("watch %s: %w", d.socket, err)
		}
		if ev.Type == "" || ev.Type == "container" {
			id := ev.Actor.ID
			if id == "" {
				id = ev.ID
			}
			changed(id)
		}
	}
}

func (d *DockerAPI) get(ctx context.Context, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://runtime"+path, nil)
	if err != nil {
		return err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return fmt.Errorf("query %s at %s: %w", path, d.socket, err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxResponse)
	if resp.StatusCode == http.StatusNotFound {
		io.Copy(io.Discard, body)
		return ErrNoContainer
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(body, 512))
		return fmt.Errorf("query %s at %s: %s: %s", path, d.socket, resp.Status, strings.TrimSpace(string(msg)))
	}
	if err := json.NewDecoder(body).Decode(into); err != nil {
		return fmt.Errorf("decode %s from %s: %w", path, d.socket, err)
	}
	return nil
}
