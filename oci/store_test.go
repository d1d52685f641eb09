package oci_test

import (
	"testing"

	"github.com/sluice-dev/sluice/oci"
)

// TestDataDir: the flag wins, then $SLUICE_DATA_DIR, then the config's
// data_dir, then the default.
func TestDataDir(t *testing.T) {
	for _, c := range []struct{ name, override, env, configured, want string }{
		{"flag", "/flag", "/env", "/config", "/flag"},
		{"environment", "", "/env", "/config", "/env"},
		{"config", "", "", "/config", "/config"},
		{"default", "", "", "", oci.DefaultDataDir},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(oci.DataDirEnv, c.env)
			if got := oci.DataDir(c.override, c.configured); got != c.want {
				t.Errorf("DataDir(%q, %q) with $%s=%q = %q, want %q", c.override, c.configured, oci.DataDirEnv, c.env, got, c.want)
			}
		})
	}
}
