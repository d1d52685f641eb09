// Package sluice is the Go SDK for sluice stages: WebAssembly modules that
// the agent calls with batches of events to filter, enrich, redact and
// reshape them. It implements the stage ABI (docs/stage-abi.md) so that a
// stage is a few lines of Go:
//
//	package main
//
//	import "github.com/sluice-dev/sluice/sdk/go/sluice"
//
//	func init() {
//		sluice.Filter(func(ev *sluice.Event) bool {
//			return string(ev.StringBytes("comm")) != "sshd"
//		})
//	}
//
//	func main() {}
//
// built with the standard toolchain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o stage.wasm .
//
// # Handlers
//
// A stage registers, from an init function, one event handler (Filter, Map
// or FlatMap) and optionally OnInit (params), OnTick (timer) and OnClose.
// main is never called: the module is a WASI reactor.
//
// # Events
//
// An Event is a view of one encoded event (a msgpack map, see
// docs/event-format.md). Getters (String, StringBytes, Int, Uint, Bool,
// Float, Time, Strings, Get, Has) scan the map in place without decoding it;
// StringBytes and Value views alias the batch and allocate nothing. Set*
// and Delete record changes, encoded only when the event is emitted; an
// event emitted unchanged is passed on by reference (the host reuses its
// bytes). NewEvent and Clone make further events (flat-map, summaries).
// Writer builds nested values (maps, lists) for Set and EmitBytes.
//
// # Params
//
// OnInit receives the stage's params (the HCL params attribute) as Params;
// Params.Decode fills a struct, matching keys to `sluice:"name"` tags (or
// msgpack or json tags, or field names ignoring case and underscores), and
// rejects unknown keys and mistyped values with an error naming the param.
//
// # Host services
//
// Log, Debugf, Infof, Warnf and Errorf write to the agent's log; NewCounter
// defines metrics; Now reads the host clock.
//
// Concurrency: a Wasm instance runs one call at a time and the host runs one
// instance per worker, so nothing here is safe for, or needs, concurrent
// use. Values and events handed to a handler are valid until it returns.
//
// Errors: a handler that panics fails its batch (the host applies the
// stage's on_error policy and logs the panic with its stack); an error from
// the OnInit function rejects the module with its message.
package sluice

// ABIVersion is the version of docs/stage-abi.md this SDK implements.
const ABIVersion = 2
