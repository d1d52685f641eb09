// Package agent wires configuration, sources, pipelines and sinks into a
// running sluice agent and owns its lifecycle: validation, start-up,
// metrics endpoint and graceful shutdown.
//
// [Validate] checks a decoded config against what only the components know
// (gadget ELFs, parameters) and reports problems as hcl.Diagnostics pointing
// at the config; it needs no privileges. [New] builds an Agent from a valid
// config, and [Agent.Run] loads the gadgets, runs every pipeline until its
// context is cancelled, then drains and flushes within the configured grace
// period. An Agent is run once, by one goroutine.
package agent
