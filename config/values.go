package config

import "slices"

// The closed sets of values that other front ends (the command line's
// flags, their shell completion) take too; the config is where they are
// defined. Each call returns a fresh copy.

// LogLevels are the values of agent.log_level.
func LogLevels() []string { return slices.Clone(logLevels) }

// PullPolicies are the values of agent.images.pull_policy.
func PullPolicies() []string { return slices.Clone(pullPolicies) }

// WhenFullPolicies are the values of a pipeline queue's when_full.
func WhenFullPolicies() []string { return slices.Clone(whenFullValues) }

// StdoutFormats are the values of a stdout sink's format.
func StdoutFormats() []string { return slices.Clone(stdoutFormats) }

// WasmBPFEmitValues are the values of a wasm_bpf source's emit.
func WasmBPFEmitValues() []string { return slices.Clone(wasmBPFEmitValues) }
