package wasmstages

import "os"

// The agent's executable started by compileAside compiles and exits before
// anything else of the program runs.
func init() {
	if arg, ok := os.LookupEnv(asideEnv); ok {
		os.Exit(compileHelperMain(arg))
	}
}
