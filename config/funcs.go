package config

import (
	"fmt"
	"os"
	"path/filepath"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// newEvalContext builds the context every expression of one config file is
// evaluated in. baseDir is the directory of that file: file() reads relative
// to it so that a config and the files it reads can move together.
//
// The context has functions only: references between blocks
// (source.gadget.exec) are resolved by name, never evaluated, so a
// reference used as a value is an error rather than a silent empty string.
func newEvalContext(baseDir string) *hcl.EvalContext {
	return &hcl.EvalContext{Functions: functions(baseDir)}
}

// functions is the table of functions a config may call. Adding one is a
// line here and a section in docs/config.md.
func functions(baseDir string) map[string]function.Function {
	return map[string]function.Function{
		"env":       envFunc,
		"file":      makeFileFunc(baseDir),
		"lower":     stdlib.LowerFunc,
		"upper":     stdlib.UpperFunc,
		"split":     stdlib.SplitFunc,
		"join":      stdlib.JoinFunc,
		"trimspace": stdlib.TrimSpaceFunc,
		"concat":    stdlib.ConcatFunc,
		// passwd_users() feeds the uid-to-user stage: see func_passwd.go.
		"passwd_users": makePasswdUsersFunc(baseDir),
	}
}

// envFunc is env(NAME) or env(NAME, DEFAULT). An unset variable without a
// default is an error: an empty agent name or address taken silently from a
// missing variable is worse than refusing to start.
var envFunc = function.New(&function.Spec{
	Description: "Returns the value of an environment variable, or the default when it is unset.",
	Params: []function.Parameter{
		{Name: "name", Type: cty.String},
	},
	VarParam: &function.Parameter{Name: "default", Type: cty.String},
	Type:     function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		if len(args) > 2 {
			return cty.NilVal, function.NewArgErrorf(2, "env takes a name and at most one default")
		}
		name := args[0].AsString()
		if v, ok := os.LookupEnv(name); ok {
			return cty.StringVal(v), nil
		}
		if len(args) == 2 {
			return args[1], nil
		}
		return cty.NilVal, function.NewArgErrorf(0, "environment variable %s is not set; set it or give a default: env(%q, \"...\")", name, name)
	},
})

func makeFileFunc(baseDir string) function.Function {
	return function.New(&function.Spec{
		Description: "Returns the contents of a UTF-8 text file (a regular file of at most MaxFileFuncBytes); a relative path is taken from the config file's directory.",
		Params: []function.Parameter{
			{Name: "path", Type: cty.String},
		},
		Type: function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			path := args[0].AsString()
			if !filepath.IsAbs(path) {
				path = filepath.Join(baseDir, path)
			}
			b, err := readRegularFile(path, MaxFileFuncBytes, "file")
			if err != nil {
				return cty.NilVal, function.NewArgErrorf(0, "read file: %s", err)
			}
			if !utf8.Valid(b) {
				return cty.NilVal, function.NewArgError(0, fmt.Errorf("read file %s: contents are not valid UTF-8", path))
			}
			return cty.StringVal(string(b)), nil
		},
	})
}
