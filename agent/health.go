package agent

import (
	"fmt"
	"io"
	"net/http"

	"github.com/sluice-dev/sluice/pipeline"
)

// Health returns what keeps the agent's components from doing their job as
// they should (a sink that cannot reach its server, a spool to replay), one
// line each; none when all is well. Safe for concurrent use while the agent
// runs.
func (a *Agent) Health() []string {
	var problems []string
	for _, s := range a.sinks {
		if h, ok := unwrapSink(s).(pipeline.HealthReporter); ok {
			if err := h.Health(); err != nil {
				problems = append(problems, err.Error())
			}
		}
	}
	return problems
}

// serveHealth answers /healthz: "ok", or "degraded" and what is wrong, one
// line each. Both with status 200: the agent is alive and runs, and a
// restart would not bring a server back (nor deliver a spool sooner), so a
// liveness probe must not act on it; monitors read the body.
func (a *Agent) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	problems := a.Health()
	if len(problems) == 0 {
		io.WriteString(w, "ok\n")
		return
	}
	io.WriteString(w, "degraded\n")
	for _, p := range problems {
		fmt.Fprintln(w, p)
	}
}
