package main

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/sluice-dev/sluice/oci/sign"
)

// generateOnTerminal runs generate-key-pair on a pseudo-terminal without
// $COSIGN_PASSWORD and types answers at its prompts.
func generateOnTerminal(t *testing.T, prefix string, answers ...string) (output string, code int) {
	t.Helper()
	cmd := exec.Command(sluiceBin, "image", "generate-key-pair", "--output-key-prefix", prefix)
	cmd.Env = withoutEnv(os.Environ(), sign.PasswordEnv)
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	lines := make(chan string, 16)
	var all strings.Builder
	go func() {
		r := bufio.NewReader(tty)
		var cur strings.Builder
		for {
			b, err := r.ReadByte()
			if err != nil {
				close(lines)
				return
			}
			cur.WriteByte(b)
			if b == ':' || b == '\n' {
				lines <- cur.String()
				cur.Reset()
			}
		}
	}()
	for _, a := range answers {
		for prompt := ""; !strings.Contains(prompt, "password for private key"); {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("no prompt; output:\n%s", all.String())
				}
				all.WriteString(l)
				prompt = l
			case <-time.After(10 * time.Second):
				t.Fatalf("no prompt within 10s; output:\n%s", all.String())
			}
		}
		io.WriteString(tty, a+"\r")
	}
	err = cmd.Wait()
	for l := range lines {
		all.WriteString(l)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return all.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return all.String(), 0
}

func withoutEnv(env []string, name string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, name+"=") {
			out = append(out, e)
		}
	}
	return out
}

// TestGenerateKeyPairPassword: the private key's password comes from
// $COSIGN_PASSWORD or the terminal (asked twice); without either the
// command refuses and writes nothing, unless --no-password says so.
func TestGenerateKeyPairPassword(t *testing.T) {
	dir := t.TempDir()
	loads := func(prefix, password string) bool {
		data, err := os.ReadFile(prefix + ".key")
		if err != nil {
			t.Fatalf("%s.key: %v", prefix, err)
		}
		_, err = sign.LoadPrivateKey(data, []byte(password))
		return err == nil
	}
	missing := func(prefix string) bool {
		_, e1 := os.Stat(prefix + ".key")
		_, e2 := os.Stat(prefix + ".pub")
		return os.IsNotExist(e1) && os.IsNotExist(e2)
	}

	t.Run("asked twice on a terminal", func(t *testing.T) {
		prefix := filepath.Join(dir, "tty")
		out, code := generateOnTerminal(t, prefix, "s3cret", "s3cret")
		if code != 0 || strings.Count(out, "password for private key") != 2 {
			t.Fatalf("exit %d, output:\n%s", code, out)
		}
		if strings.Contains(out, "s3cret") {
			t.Error("the password was echoed")
		}
		if !loads(prefix, "s3cret") || loads(prefix, "") {
			t.Error("the key is not encrypted with the password typed")
		}
	})
	t.Run("passwords differ", func(t *testing.T) {
		prefix := filepath.Join(dir, "differ")
		out, code := generateOnTerminal(t, prefix, "one", "two")
		if code != 1 || !strings.Contains(out, "do not match") || !missing(prefix) {
			t.Errorf("exit %d, output:\n%s", code, out)
		}
	})
	t.Run("empty on a terminal", func(t *testing.T) {
		prefix := filepath.Join(dir, "empty")
		out, code := generateOnTerminal(t, prefix, "", "")
		if code != 1 || !strings.Contains(out, "--no-password") || !missing(prefix) {
			t.Errorf("exit %d, output:\n%s", code, out)
		}
	})
	run := func(env []string, args ...string) (string, int) {
		cmd := exec.Command(sluiceBin, append([]string{"image", "generate-key-pair"}, args...)...)
		cmd.Env = append(withoutEnv(os.Environ(), sign.PasswordEnv), env...)
		cmd.Stdin = strings.NewReader("s3cret\ns3cret\n") // not a terminal: never read
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		return string(out), 0
	}
	t.Run("no terminal, no password", func(t *testing.T) {
		prefix := filepath.Join(dir, "none")
		out, code := run(nil, "--output-key-prefix", prefix)
		if code != 2 || !strings.Contains(out, "$COSIGN_PASSWORD") || !missing(prefix) {
			t.Errorf("exit %d, output:\n%s", code, out)
		}
		out, code = run([]string{sign.PasswordEnv + "="}, "--output-key-prefix", prefix)
		if code != 2 || !strings.Contains(out, "--no-password") || !missing(prefix) {
			t.Errorf("empty $COSIGN_PASSWORD: exit %d, output:\n%s", code, out)
		}
	})
	t.Run("environment", func(t *testing.T) {
		prefix := filepath.Join(dir, "env")
		if out, code := run([]string{sign.PasswordEnv + "=from-env"}, "--output-key-prefix", prefix); code != 0 {
			t.Fatalf("exit %d, output:\n%s", code, out)
		}
		if !loads(prefix, "from-env") || loads(prefix, "") {
			t.Error("the key is not encrypted with $COSIGN_PASSWORD")
		}
	})
	t.Run("no password on purpose", func(t *testing.T) {
		prefix := filepath.Join(dir, "open")
		out, code := run(nil, "--no-password", "--output-key-prefix", prefix)
		if code != 0 || !strings.Contains(out, "NOT protected") || !loads(prefix, "") {
			t.Errorf("exit %d, output:\n%s", code, out)
		}
	})
}

// TestSignBlob: sign-blob signs a file as cosign sign-blob does;
// verify-blob accepts the signature with the key, and refuses another key
// or a changed file.
func TestSignBlob(t *testing.T) {
	dir := t.TempDir()
	e := newImageEnv(t) // COSIGN_PASSWORD=pw
	key := filepath.Join(dir, "k")
	other := filepath.Join(dir, "other")
	e.ok(t, "image", "generate-key-pair", "--output-key-prefix", key)
	e.ok(t, "image", "generate-key-pair", "--output-key-prefix", other)
	file := filepath.Join(dir, "SHA256SUMS")
	os.WriteFile(file, []byte("0123  sluice\n"), 0o644)
	sig := filepath.Join(dir, "SHA256SUMS.sig")
	e.ok(t, "image", "sign-blob", "--key", key+".key", "--output-signature", sig, file)
	if out := e.ok(t, "image", "verify-blob", "--key", key+".pub", "--signature", sig, file); !strings.Contains(out, "verified") {
		t.Errorf("verify-blob: %s", out)
	}
	data, _ := os.ReadFile(file)
	s, _ := os.ReadFile(sig)
	k, _ := os.ReadFile(key + ".pub")
	pub, err := sign.LoadPublicKey(k)
	if err != nil || !sign.VerifyPayload(pub, data, string(s)) {
		t.Errorf("the signature is not ECDSA-SHA256 of the file, base64, as cosign's: %v", err)
	}
	if _, errOut, code := e.run(t, "", "image", "verify-blob", "--key", other+".pub", "--signature", sig, file); code != 1 || !strings.Contains(errOut, "not by any of the keys") {
		t.Errorf("another key: exit %d, %s", code, errOut)
	}
	os.WriteFile(file, []byte("0124  sluice\n"), 0o644)
	if _, errOut, code := e.run(t, "", "image", "verify-blob", "--key", key+".pub", "--signature", sig, file); code != 1 {
		t.Errorf("a changed file: exit %d, %s", code, errOut)
	}
}
