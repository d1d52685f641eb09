package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/nats-io/nats.go"

	"github.com/sluice-dev/sluice/agent"
)

// connectSubscriber connects `sluice subscribe` to url, authenticating as
// subscribeAuth says. Credentials it found by itself are dropped again for
// a server that wants none (one run with auth = "none").
func connectSubscriber(url, nkeyFile, credsFile, dataDir string) (*nats.Conn, error) {
	auth, used, err := subscribeAuth(nkeyFile, credsFile, dataDir)
	if err != nil {
		return nil, err
	}
	name := nats.Name("sluice subscribe")
	nc, err := nats.Connect(url, append(auth, name)...)
	if errors.Is(err, nats.ErrNkeysNotSupported) && nkeyFile == "" && credsFile == "" {
		nc, err = nats.Connect(url, name)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", url, explainAuthFailure(err, used, dataDir))
	}
	return nc, nil
}

// subscribeAuth returns the options with which `sluice subscribe`
// authenticates: an NKey seed or creds file when given, otherwise the
// embedded server's read-only credentials under dataDir when this user can
// read them (the agent's user, root by default), otherwise none. found
// names the file used, for messages.
func subscribeAuth(nkeyFile, credsFile, dataDir string) (opts []nats.Option, found string, err error) {
	switch {
	case nkeyFile != "" && credsFile != "":
		return nil, "", errors.New("pass --nkey or --creds, not both")
	case nkeyFile != "":
		opt, err := nats.NkeyOptionFromSeed(nkeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("read nkey seed: %w", err)
		}
		return []nats.Option{opt}, nkeyFile, nil
	case credsFile != "":
		if _, err := os.Stat(credsFile); err != nil {
			return nil, "", fmt.Errorf("read creds file: %w", err)
		}
		return []nats.Option{nats.UserCredentials(credsFile)}, credsFile, nil
	}
	seed := agent.NATSReaderSeedFile(dataDir)
	opt, err := nats.NkeyOptionFromSeed(seed)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return nil, "", nil // not the agent's user, or no agent here yet
		}
		return nil, "", fmt.Errorf("read the embedded server's reader credentials: %w", err)
	}
	return []nats.Option{opt}, seed, nil
}

// explainAuthFailure adds what to do to a connection refused for want of
// credentials.
func explainAuthFailure(err error, used, dataDir string) error {
	if !errors.Is(err, nats.ErrAuthorization) {
		return err
	}
	if used != "" {
		return fmt.Errorf("%w (with the credentials in %s)", err, used)
	}
	return fmt.Errorf("%w: the server wants credentials; run as the agent's user so that subscribe reads %s, or pass --nkey or --creds",
		err, agent.NATSReaderSeedFile(dataDir))
}
