package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Network addresses are checked when the config is decoded, as the
// programs that use them will read them: NATS server URLs as nats.go
// parses them, listen addresses as net.Listen and the NATS server take
// them. Before, `sluice config validate` passed what the agent then refused
// at start ("invalid port after host", "missing port in address").

// NATSURLSchemes are the schemes nats.go connects with; a URL without one
// is taken as nats://.
var natsURLSchemes = []string{"nats", "tls", "ws", "wss"}

// CheckNATSURL reports what nats.go would refuse in a server URL, or a
// comma-separated list of a cluster's server URLs: a part that does not
// parse, an unknown scheme, no host, a port that is not a number from 1 to
// 65535, or websocket and plain URLs mixed. A part without a scheme is
// nats://, one without a port takes the scheme's default, as in nats.go.
func CheckNATSURL(s string) error {
	var websocket, plain bool
	n := 0
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSuffix(strings.TrimSpace(part), "/")
		if part == "" {
			continue // nats.go skips empty parts too
		}
		n++
		full := part
		if !strings.Contains(full, "://") {
			full = "nats://" + full
		}
		u, err := url.Parse(full)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // the URL itself is in the message already
			}
			return fmt.Errorf("server URL %q: %w", part, err)
		}
		if !contains(natsURLSchemes, u.Scheme) {
			return fmt.Errorf("server URL %q: scheme %q is not one NATS clients connect with; use %s", part, u.Scheme, quotedList(natsURLSchemes))
		}
		if u.Hostname() == "" {
			return fmt.Errorf("server URL %q has no host", part)
		}
		if p := u.Port(); p != "" {
			if err := checkPort(p); err != nil {
				return fmt.Errorf("server URL %q: %w", part, err)
			}
		}
		if u.Scheme == "ws" || u.Scheme == "wss" {
			websocket = true
		} else {
			plain = true
		}
	}
	switch {
	case n == 0:
		return errors.New("no server URL in the list")
	case websocket && plain:
		return errors.New("websocket (ws://, wss://) and other server URLs cannot be mixed in one list")
	}
	return nil
}

// CheckListenAddress reports what is wrong with a host:port to listen on:
// no port, or a port that is not a number from 0 to 65535 (0 picks a free
// port). The host may be empty (every interface), an IP address or a name.
func CheckListenAddress(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			err = errors.New(ae.Err) // the address is in the message already
		}
		return fmt.Errorf("%q is not host:port (%w); write \"127.0.0.1:9464\", \"[::1]:9464\" or \":9464\" for every interface", s, err)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q: host %q is neither an IP address nor a host name", s, host)
	}
	if port == "0" {
		return nil
	}
	if err := checkPort(port); err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	return nil
}

func checkPort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", p)
	}
	return nil
}

// addressDiag turns an address check's error into a diagnostic at attr's
// value, or returns nil.
func addressDiag(attr *hcl.Attribute, err error) *hcl.Diagnostic {
	if err == nil {
		return nil
	}
	return invalidValue(attr, upperFirst(err.Error())+".")
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
