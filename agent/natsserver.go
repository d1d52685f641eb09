package agent

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sluice-dev/sluice/config"
)

// startNATSServer runs the real NATS server in-process. The caller shuts it
// down after the sinks have closed.
func startNATSServer(cfg *config.NATSServer) (*server.Server, error) {
	host, portText, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats_server listen %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("nats_server listen %q: bad port", cfg.Listen)
	}
	opts := &server.Options{
		ServerName: "sluice-embedded",
		Host:       host,
		Port:       port,
		JetStream:  cfg.JetStream,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true, // the agent owns signal handling
		NoLog:      true,
	}
	if cfg.JetStream {
		if err := os.MkdirAll(cfg.StoreDir, 0o700); err != nil {
			return nil, fmt.Errorf("nats_server store_dir: %w", err)
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start embedded nats server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded nats server on %s did not become ready (is the port in use?)", cfg.Listen)
	}
	return srv, nil
}
