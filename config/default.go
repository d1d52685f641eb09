package config

import _ "embed"

// Default is the built-in config used when none is given: every built-in
// gadget in one pipeline, printed to stdout as a table.
//
//go:embed default.hcl
var Default string
