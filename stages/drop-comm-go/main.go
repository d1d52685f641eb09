// Command drop-comm-go is the drop-comm stage written with the Go SDK: it
// drops events whose comm is one of the names in the param comms.
package main

import (
	"fmt"

	"github.com/sluice-dev/sluice/sdk/go/sluice"
)

type params struct {
	Comms []string `sluice:"comms,required"`
}

var drop = sluice.NewStringSet()

func init() {
	dropped := sluice.NewCounter("dropped")
	sluice.OnInit(func(p sluice.Params) error {
		var cfg params
		if err := p.Decode(&cfg); err != nil {
			return err
		}
		for _, c := range cfg.Comms {
			if c == "" {
				return fmt.Errorf("params.comms: an empty name matches nothing; remove it")
			}
			drop.Add(c)
		}
		return nil
	})
	sluice.Filter(func(ev *sluice.Event) bool {
		if drop.Has(ev.StringBytes("comm")) {
			dropped.Inc()
			return false
		}
		return true
	})
}

func main() {}
