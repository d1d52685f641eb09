// Package agent wires configuration, sources, pipelines and sinks into a
// running sluice agent and owns its lifecycle: validation, start-up,
// supervision, live reload, the metrics and control endpoints, and
// graceful shutdown.
//
// [Validate] checks a decoded config against what only the components know
// (gadget ELFs, parameters) and reports problems as hcl.Diagnostics pointing
// at the config; it needs no privileges. [New] turns a valid config into a
// plan: every component as a spec, plain values with a fingerprint, nothing
// running. [Agent.Run] creates the live objects of the plan in order (the
// compilation cache, the embedded NATS server, the sinks, the stages and
// gadgets, the endpoints, the pipelines), each pushed on one cleanup stack
// that releases them in reverse order when a step fails or Run returns,
// runs the pipelines until its context is cancelled, then drains and
// flushes within the configured grace period. An Agent is run once.
//
// [Agent.Reload] (SIGHUP, `sluice ctl reload`) builds a plan from the
// config read again and compares fingerprints: unchanged components keep
// running untouched (queues keep their events, readers stay attached),
// changed ones are built and started beside the old ones and swapped in
// (pipeline.Update), removed ones drain and stop. A new config with errors,
// or a component that fails to start, changes nothing.
//
// Stage versions: one follower per Wasm stage (stagefollow.go) makes
// every swap of it, in every pipeline: a module file that changed, an OCI
// tag that moved, a version the fleet's control bucket names (rollout.go,
// the agent's own NATS connection, on which nothing of the data path
// waits). A version that cannot run leaves the running one serving; one
// that fails too often after its swap is rolled back. [Agent.StageStatus]
// says what each stage runs, [Agent.CheckStages] asks for a check now.
//
// Ownership and concurrency: Run's goroutine owns the live objects and
// applies reloads one at a time; a pipeline owns its components while it
// runs and closes them when it stops using them. A source is supervised: a
// gadget that fails while it should run is reported at once (log,
// sluice_errors_total, /healthz) and loaded again with backoff. Reload,
// Status, StageStatus, CheckStages, Tap, Summary, Config and Metrics are
// safe for concurrent use.
package agent
