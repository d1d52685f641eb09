package wasmstages_test

import (
	"context"
	"fmt"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
	"github.com/sluice-dev/sluice/wasmstages"
)

// A stage is built from a module and its params, and called with batches
// of encoded events; what it keeps comes back unchanged.
func Example() {
	ctx := context.Background()
	stage, err := wasmstages.New(ctx, wasmstages.Config{
		Name:   "no_shells",
		Module: "testdata/filter.wasm", // drops the events whose comm is listed
		Params: map[string]any{"comms": []string{"sh", "bash"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stage.Close(ctx)

	event := func(seq uint64, comm string) pipeline.Event {
		b := codec.AppendMapHeader(nil, 2)
		b = codec.AppendUint(codec.AppendString(b, "seq"), seq)
		b = codec.AppendString(codec.AppendString(b, "comm"), comm)
		return pipeline.Event{Data: b, Source: "exec", Seq: seq}
	}
	in := []pipeline.Event{event(1, "sh"), event(2, "cat"), event(3, "bash"), event(4, "ls")}
	out, err := stage.Process(ctx, in, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, ev := range out {
		raw, _ := codec.Lookup(ev.Data, "comm")
		comm, _, _ := codec.ReadString(raw)
		fmt.Println(ev.Seq, string(comm))
	}
	// Output:
	// 2 cat
	// 4 ls
}

// A module that does not implement the ABI is refused with the reason.
func ExampleCheck() {
	err := wasmstages.Check(context.Background(), wasmstages.Config{Name: "old", Module: "testdata/abi_version.wasm"})
	fmt.Println(err)
	// Output:
	// load stage "old": module does not implement stage ABI: sluice_abi_version returned 3; this host implements versions 1 to 2
}
