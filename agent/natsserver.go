package agent

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sluice-dev/sluice/config"
)

// startNATSServer runs the real NATS server in-process, its log going to
// log (warnings and errors; notices at debug level). Unless the config says
// auth = "none" (warned about loudly), only the two users of the generated
// credentials under dataDir may connect (natsauth.go). The caller shuts it
// down after the sinks have closed.
func startNATSServer(cfg *config.NATSServer, dataDir string, log *slog.Logger) (*server.Server, error) {
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
		// The server keeps closed connections for its monitoring port's
		// /connz, which the embedded server does not serve: 10,000 by
		// default, half a megabyte of the agent's heap.
		MaxClosedClients: 16,
	}
	switch cfg.Auth {
	case config.NATSAuthNone:
		log.Warn("the embedded nats server accepts clients without authentication: anyone who can connect may read every event, "+
			"publish forged ones and delete the stream (nats_server auth = \"none\")", "listen", cfg.Listen)
	default:
		creds, err := loadNATSCredentials(dataDir, log)
		if err != nil {
			return nil, fmt.Errorf("embedded nats server: %w", err)
		}
		opts.Nkeys = creds.nkeyUsers()
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
	srv.SetLoggerV2(serverLog{log.With("component", "nats_server")}, false, false, false)
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded nats server on %s did not become ready (is the port in use?)", cfg.Listen)
	}
	if cfg.JetStream && !srv.JetStreamEnabled() {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded nats server: JetStream did not start (store_dir %s; see the log)", cfg.StoreDir)
	}
	return srv, nil
}

// serverLog passes the embedded server's log to the agent's.
type serverLog struct{ log *slog.Logger }

func (l serverLog) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLog) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l serverLog) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLog) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLog) Debugf(format string, v ...any)  {}
func (l serverLog) Tracef(format string, v ...any)  {}
