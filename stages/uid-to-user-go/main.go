// Command uid-to-user-go is the Go SDK version of the built-in uid-to-user
// stage (stages/uid-to-user, in C), kept as an example and for the
// parity test. It is a stage that enriches events with a user name
// looked up from a uid -> name table passed in its params (the default
// config fills it from /etc/passwd with the HCL function passwd_users()):
//
//	params = {
//	  users   = passwd_users()   # or { "0" = "root", "1000" = "alice" }
//	  field   = "uid"            # the field holding the uid (default "uid")
//	  target  = "user"           # the field to set (default "user")
//	  unknown = "?"              # set for uids not in the table (default: leave unset)
//	}
package main

import (
	"fmt"
	"strconv"

	"github.com/sluice-dev/sluice/sdk/go/sluice"
)

type params struct {
	Users   map[string]string `sluice:"users,required"`
	Field   string            `sluice:"field"`
	Target  string            `sluice:"target"`
	Unknown *string           `sluice:"unknown"`
}

var (
	users   map[uint64]string
	field   = "uid"
	target  = "user"
	unknown *string
	missed  *sluice.Counter
)

func init() {
	missed = sluice.NewCounter("unknown_uid")
	sluice.OnInit(func(p sluice.Params) error {
		var cfg params
		if err := p.Decode(&cfg); err != nil {
			return err
		}
		users = make(map[uint64]string, len(cfg.Users))
		for k, name := range cfg.Users {
			uid, err := strconv.ParseUint(k, 10, 32)
			if err != nil {
				return fmt.Errorf("params.users: key %q is not a uid (a number)", k)
			}
			users[uid] = name
		}
		if cfg.Field != "" {
			field = cfg.Field
		}
		if cfg.Target != "" {
			target = cfg.Target
		}
		unknown = cfg.Unknown
		return nil
	})
	sluice.Map(func(ev *sluice.Event) {
		uid, ok := ev.Get(field).Uint()
		if !ok {
			return // no uid: pass the event on untouched
		}
		if name, ok := users[uid]; ok {
			ev.SetString(target, name)
			return
		}
		missed.Inc()
		if unknown != nil {
			ev.SetString(target, *unknown)
		}
	})
}

func main() {}
