package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"

	"github.com/sluice-dev/sluice/agent"
	"github.com/sluice-dev/sluice/oci"
)

// readerCredentials returns the embedded server's read-only NKey seed file
// under the data directory (dataDir, else $SLUICE_DATA_DIR, else the
// default) when this user can read it, or "".
func readerCredentials(dataDir string) string {
	seed := agent.NATSReaderSeedFile(oci.DataDir(dataDir, ""))
	f, err := os.Open(seed)
	if err != nil {
		return "" // not the agent's user, or no agent here yet
	}
	f.Close()
	return seed
}

// explainAuthFailure adds what to do to a connection refused for want of
// credentials.
func explainAuthFailure(err error, f *natsClientFlags, found string) error {
	if !errors.Is(err, nats.ErrAuthorization) {
		return err
	}
	switch {
	case found != "":
		return fmt.Errorf("%w (with the embedded server's read-only credentials in %s)", err, found)
	case f.user != "" || f.token != "" || f.nkey != "" || f.creds != "" || os.Getenv("NATS_TOKEN") != "":
		return err
	}
	return fmt.Errorf("%w: the server wants credentials; run as the agent's user so that the embedded server's read-only ones are read from %s (--data-dir), or pass --creds, --nkey, --user or --token",
		err, agent.NATSReaderSeedFile(oci.DataDir(f.dataDir, "")))
}
