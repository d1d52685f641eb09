package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

func evalExpr(t *testing.T, baseDir, src string) (cty.Value, hcl.Diagnostics) {
	t.Helper()
	expr, diags := hclsyntax.ParseExpression([]byte(src), "test.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parse %s: %v", src, diags)
	}
	return expr.Value(newEvalContext(baseDir))
}

func TestPasswdUsers(t *testing.T) {
	dir := t.TempDir()
	passwd := strings.Join([]string{
		"# comment",
		"root:x:0:0:root:/root:/bin/bash",
		"",
		"alice:x:1000:1000:Alice,,,:/home/alice:/bin/sh",
		"alias:x:1000:1000::/home/alice:/bin/sh", // same uid: the first wins
		"+nisuser::::::",
		"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
	}, "\n")
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	v, diags := evalExpr(t, dir, `passwd_users("passwd")`)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	got := map[string]string{}
	for k, name := range v.AsValueMap() {
		got[k] = name.AsString()
	}
	want := map[string]string{"0": "root", "1000": "alice", "65534": "nobody"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("passwd_users (-want +got):\n%s", diff)
	}
}

// Without an argument the function reads the host's /etc/passwd, which on
// every Linux machine names uid 0.
func TestPasswdUsersDefault(t *testing.T) {
	if _, err := os.Stat(defaultPasswdPath); err != nil {
		t.Skipf("no %s on this machine", defaultPasswdPath)
	}
	v, diags := evalExpr(t, t.TempDir(), `passwd_users()`)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if root := v.Index(cty.StringVal("0")); root.AsString() == "" {
		t.Errorf("uid 0 has no name")
	}
}

func TestPasswdUsersErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad"), []byte("root:x:0:0::/:/bin/sh\nbroken line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "baduid"), []byte("root:x:zero:0::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for src, want := range map[string]string{
		`passwd_users("bad")`:     `line 2: want name:password:uid:gid:..., got "broken line"`,
		`passwd_users("baduid")`:  `line 1: uid "zero" of root is not a number`,
		`passwd_users("missing")`: "read passwd file",
		`passwd_users("a", "b")`:  "at most one path",
		`passwd_users(["a"])`:     "string required",
	} {
		_, diags := evalExpr(t, dir, src)
		if !diags.HasErrors() || !strings.Contains(diags.Error(), want) {
			t.Errorf("%s: diagnostics %v, want one containing %q", src, diags, want)
			continue
		}
		if r := diags[0].Subject; r == nil || r.Filename != "test.hcl" || r.Start.Line != 1 {
			t.Errorf("%s: diagnostic has no test.hcl:1 range: %+v", src, diags[0].Subject)
		}
	}
	v, diags := evalExpr(t, dir, `passwd_users("empty")`)
	if diags.HasErrors() || v.LengthInt() != 0 {
		t.Errorf("empty file: %v %v", v, diags)
	}
}
