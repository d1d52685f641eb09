package deps

import (
	_ "github.com/cilium/ebpf"
	_ "github.com/hashicorp/hcl/v2"
	_ "github.com/hashicorp/hcl/v2/gohcl"
	_ "github.com/vmihailenco/msgpack/v5"
	_ "github.com/zclconf/go-cty/cty"
	_ "golang.org/x/sys/unix"
	_ "golang.org/x/sync/errgroup"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/tetratelabs/wazero"
	_ "github.com/nats-io/nats.go"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "oras.land/oras-go/v2"
)
