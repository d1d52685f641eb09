package config

import (
	"bufio"
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// defaultPasswdPath is what passwd_users() reads without an argument.
const defaultPasswdPath = "/etc/passwd"

// makePasswdUsersFunc is passwd_users() or passwd_users(PATH): a map from
// uid (as a string, since HCL object keys are strings) to user name, read
// from a passwd(5) file, for stages such as uid-to-user. The file is read
// when the config is evaluated (at start and on reload), not per event.
func makePasswdUsersFunc(baseDir string) function.Function {
	return function.New(&function.Spec{
		Description: "Returns a map of uid to user name read from a passwd(5) file (default /etc/passwd); a relative path is taken from the config file's directory.",
		VarParam:    &function.Parameter{Name: "path", Type: cty.String},
		Type:        function.StaticReturnType(cty.Map(cty.String)),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if len(args) > 1 {
				return cty.NilVal, function.NewArgErrorf(1, "passwd_users takes at most one path")
			}
			path := defaultPasswdPath
			if len(args) == 1 {
				path = args[0].AsString()
				if !filepath.IsAbs(path) {
					path = filepath.Join(baseDir, path)
				}
			}
			b, err := readRegularFile(path, MaxPasswdBytes, "passwd file")
			if err != nil {
				return cty.NilVal, fmt.Errorf("read passwd file: %w", err)
			}
			users, err := parsePasswd(b)
			if err != nil {
				return cty.NilVal, fmt.Errorf("parse passwd file %s: %w", path, err)
			}
			if len(users) == 0 {
				return cty.MapValEmpty(cty.String), nil
			}
			m := make(map[string]cty.Value, len(users))
			for uid, name := range users {
				m[uid] = cty.StringVal(name)
			}
			return cty.MapVal(m), nil
		},
	})
}

// parsePasswd returns uid -> name from passwd(5) lines
// (name:password:uid:gid:gecos:home:shell). Comments, blank lines and NIS
// compat entries (+ and -) are skipped; when a uid appears twice the first
// entry wins, as getpwuid(3) answers. A line that is not a passwd entry is
// an error naming it, rather than a user silently missing.
func parsePasswd(b []byte) (map[string]string, error) {
	users := make(map[string]string)
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < 4 || f[0] == "" {
			return nil, fmt.Errorf("line %d: want name:password:uid:gid:..., got %q", n, line)
		}
		uid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("line %d: uid %q of %s is not a number", n, f[2], f[0])
		}
		key := strconv.FormatUint(uid, 10)
		if _, dup := users[key]; !dup {
			users[key] = f[0]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return users, nil
}
