package config_test

import (
	"fmt"
	"os"

	"github.com/sluice-dev/sluice/config"
)

func ExampleParse() {
	src := []byte(`
agent { name = "node-a" }

source "gadget" "exec" {
  gadget = "trace_exec"
  params = { ignore_failed = true }
}

sink "stdout" "console" { format = "table" }

pipeline "security" {
  sources = [source.gadget.exec]
  sinks   = [sink.stdout.console]
  queue { when_full = "drop_oldest" }
}
`)
	f, diags := config.Parse("sluice.hcl", src)
	if diags.HasErrors() {
		fmt.Println(diags.Error())
		return
	}
	fmt.Println("agent:", f.Agent.Name, f.Agent.ShutdownGrace)
	for _, p := range f.Pipelines {
		for _, ref := range p.Sources {
			s := f.Source(ref)
			fmt.Println("source:", ref, "gadget", s.Gadget, "params", s.Params[0].Name+"="+s.Params[0].Value)
		}
		for _, ref := range p.Sinks {
			fmt.Println("sink:", ref, "format", f.Sink(ref).Stdout.Format)
		}
		fmt.Println("queue:", p.Queue.MaxEvents, p.Queue.MaxBytes, p.Queue.WhenFull)
		fmt.Println("batch:", p.Batch.MaxEvents, p.Batch.MaxDelay)
	}
	// Output:
	// agent: node-a 10s
	// source: source.gadget.exec gadget trace_exec params ignore_failed=true
	// sink: sink.stdout.console format table
	// queue: 8192 16777216 drop_oldest
	// batch: 256 50ms
}

func ExampleParser_WriteDiagnostics() {
	p := config.NewParser()
	_, diags := p.ParseSource("bad.hcl", []byte(`
pipeline "p" {
  sources = ["source.gadget.exec"]
  sinks   = [sink.stdout.console]
}
`))
	if err := p.WriteDiagnostics(os.Stdout, diags, false); err != nil {
		fmt.Println(err)
	}
	// Output:
	// bad.hcl:3:14: Error: Reference given as a string
	//
	//   on bad.hcl line 3, in pipeline "p":
	//    3:   sources = ["source.gadget.exec"]
	//
	// References are bare names, not strings: write source.gadget.exec without quotes.
	//
	// bad.hcl:4:14: Error: Reference to undeclared sink
	//
	//   on bad.hcl line 4, in pipeline "p":
	//    4:   sinks   = [sink.stdout.console]
	//
	// There is no sink.stdout.console; this file declares no sink blocks.
}
