package config

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// fileSchema is the top level of a config file.
var fileSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "agent"},
		{Type: KindSource, LabelNames: []string{"type", "name"}},
		{Type: KindSink, LabelNames: []string{"type", "name"}},
		{Type: KindStage, LabelNames: []string{"type", "name"}},
		{Type: "pipeline", LabelNames: []string{"name"}},
	},
}

var agentSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "name"},
		{Name: "data_dir"},
		{Name: "metrics_listen"},
		{Name: "control_socket"},
		{Name: "log_level"},
		{Name: "log_format"},
		{Name: "shutdown_grace"},
		{Name: "memory_limit"},
		{Name: "gc_percent"},
		{Name: "max_procs"},
		{Name: "loss_report_interval"},
		{Name: "pull_policy"},
		{Name: "allow"},
		{Name: "filter_self"},
		{Name: "group"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "containers"},
		{Type: "nats_server"},
		{Type: "registries"},
		{Type: "verify"},
		{Type: "control"},
	},
}

var pipelineSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "sources"},
		{Name: "stages"},
		{Name: "sinks"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "queue"},
		{Type: "batch"},
	},
}

var queueSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "max_events"},
		{Name: "max_bytes"},
		{Name: "when_full"},
	},
}

var batchSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "max_events"},
		{Name: "max_delay"},
	},
}

// decoder carries what decoding one file needs. It lives for one call.
type decoder struct {
	ectx     *hcl.EvalContext
	filename string
	// broken holds the references of component blocks that were declared but
	// could not be decoded (unknown type), so that pipelines naming them do
	// not also get a dangling-reference error for the same mistake.
	broken map[string]bool
	// unreferenceable holds the references of blocks whose name is not an
	// identifier: no pipeline can list them, so they are not "unused".
	unreferenceable map[string]bool
	// badRefs is set when a pipeline's reference list had errors; the
	// "unused" warnings would then mostly repeat those errors.
	badRefs bool
}

// decodeBody decodes a parsed file body into a File with defaults applied.
func decodeBody(filename string, body hcl.Body, ectx *hcl.EvalContext) (*File, hcl.Diagnostics) {
	d := &decoder{ectx: ectx, filename: filename, broken: map[string]bool{}, unreferenceable: map[string]bool{}}
	f := &File{}
	content, diags := body.Content(fileSchema)

	var agentBlock *hcl.Block
	// declared holds the first declaration of each name, by block type:
	// names are unique within a kind, whatever the component type.
	declared := map[string]map[string]hcl.Range{}
	unique := func(kind, name string, rng hcl.Range, why string) bool {
		first, ok := declared[kind][name]
		if ok {
			diags = append(diags, duplicate(kind+" block", fmt.Sprintf("A %s named %q", kind, name), first, rng, why))
			return false
		}
		if declared[kind] == nil {
			declared[kind] = map[string]hcl.Range{}
		}
		declared[kind][name] = rng
		return true
	}
	for _, b := range content.Blocks {
		switch b.Type {
		case "agent":
			if agentBlock != nil {
				diags = append(diags, duplicate("agent block", "An agent block", agentBlock.DefRange, b.DefRange,
					"A file has at most one agent block."))
				continue
			}
			agentBlock = b
		case KindSource:
			src, ds := d.source(b)
			diags = append(diags, ds...)
			if src != nil && unique(KindSource, src.Name, src.DefRange,
				"Source names must be unique, whatever their type, because events carry the source name.") {
				f.Sources = append(f.Sources, src)
			}
		case KindSink:
			sink, ds := d.sink(b)
			diags = append(diags, ds...)
			if sink != nil && unique(KindSink, sink.Name, sink.DefRange,
				"Sink names must be unique, whatever their type, because metrics and logs name sinks by name.") {
				f.Sinks = append(f.Sinks, sink)
			}
		case KindStage:
			st, ds := d.stage(b)
			diags = append(diags, ds...)
			if st != nil && unique(KindStage, st.Name, st.DefRange,
				"Stage names must be unique, whatever their type, because metrics and logs name stages by name.") {
				f.Stages = append(f.Stages, st)
			}
		case "pipeline":
			p, ds := d.pipeline(b)
			diags = append(diags, ds...)
			if unique("pipeline", p.Name, p.DefRange, "Pipeline names must be unique.") {
				f.Pipelines = append(f.Pipelines, p)
			}
		}
	}
	agent, ds := d.agent(agentBlock)
	f.Agent = agent
	diags = append(diags, ds...)
	diags = append(diags, d.resolve(f)...)
	if len(f.Pipelines) == 0 && !diags.HasErrors() {
		// An agent without pipelines would start, do nothing and exit 0:
		// a config that lost its pipelines (an empty file, a bad merge)
		// must not look like a running agent. (With other errors, those
		// come first.)
		start := hcl.Range{Filename: filename, Start: hcl.InitialPos, End: hcl.InitialPos}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Nothing to run",
			Detail: "The config declares no pipeline, so the agent would have nothing to run. Connect sources to sinks " +
				"with a pipeline block (`sluice config default` prints a complete config to start from).",
			Subject: &start,
		})
	}
	return f, sortByPos(diags)
}

// sortByPos orders diagnostics as they appear in the file, so that a user
// fixing them top to bottom meets them in that order. Diagnostics without a
// subject come first; the sort is stable for ties.
func sortByPos(diags hcl.Diagnostics) hcl.Diagnostics {
	slices.SortStableFunc(diags, func(a, b *hcl.Diagnostic) int {
		switch {
		case a.Subject == nil && b.Subject == nil:
			return 0
		case a.Subject == nil:
			return -1
		case b.Subject == nil:
			return 1
		}
		if c := cmp.Compare(a.Subject.Filename, b.Subject.Filename); c != 0 {
			return c
		}
		return cmp.Compare(a.Subject.Start.Byte, b.Subject.Start.Byte)
	})
	return diags
}

// duplicate reports a second declaration, naming the first one's location in
// the detail so that both places are in front of the user.
func duplicate(what, subject string, first, second hcl.Range, why string) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Duplicate " + what,
		Detail:   fmt.Sprintf("%s was already declared at %s. %s", subject, first, why),
		Subject:  second.Ptr(),
	}
}

func (d *decoder) agent(b *hcl.Block) (Agent, hcl.Diagnostics) {
	a := DefaultAgent()
	var diags hcl.Diagnostics
	controlSet := false
	if b != nil {
		a.DefRange = b.DefRange
		var content *hcl.BodyContent
		content, diags = b.Body.Content(agentSchema)
		for _, as := range agentSchema.Attributes {
			attr := content.Attributes[as.Name]
			if attr == nil {
				continue
			}
			var ds hcl.Diagnostics
			switch as.Name {
			case "name":
				var ok bool
				if a.Name, ok, ds = evalNonEmptyOr(attr, d.ectx, a.Name); ok {
					if why := badAgentName(a.Name); why != "" {
						shown := a.Name
						if len(shown) > 64 {
							shown = shown[:64] + "..."
						}
						ds = append(ds, invalidValue(attr, fmt.Sprintf("The agent name %q %s: it names the agent in every event, subject and log line.", shown, why)))
						a.Name = ""
					}
				}
			case "data_dir":
				a.DataDir, _, ds = evalNonEmptyOr(attr, d.ectx, a.DataDir)
			case "metrics_listen":
				// "" is meaningful here: it turns the endpoint off.
				var s string
				var ok bool
				s, ok, ds = evalString(attr, d.ectx)
				if ok && s != "" {
					if bad := addressDiag(attr, CheckListenAddress(s)); bad != nil {
						ds = append(ds, bad)
					}
				}
				if ok {
					a.MetricsListen = s
				}
			case "control_socket":
				// "" is meaningful here too: no control API.
				var s string
				var ok bool
				s, ok, ds = evalString(attr, d.ectx)
				if ok {
					a.ControlSocket, a.ControlSocketRange, controlSet = s, attr.Expr.Range(), true
				}
			case "log_level":
				a.LogLevel, ds = enumOr(attr, d.ectx, logLevels, a.LogLevel)
			case "log_format":
				a.LogFormat, ds = enumOr(attr, d.ectx, logFormats, a.LogFormat)
			case "shutdown_grace":
				a.ShutdownGrace, ds = durationIn(attr, d.ectx, a.ShutdownGrace, shutdownGraceBound)
			case "gc_percent":
				var n int
				var ok bool
				n, ok, ds = evalIntIn(attr, d.ectx, gcPercentBound)
				if ok {
					a.GCPercent = n
				}
			case "max_procs":
				var n int
				var ok bool
				n, ok, ds = evalIntIn(attr, d.ectx, maxProcsBound)
				if ok {
					a.MaxProcs = n
				}
			case "memory_limit":
				a.MemoryLimit, _, ds = evalSizeIn(attr, d.ectx, memoryLimitBound)
				a.MemoryLimitRange = attr.Expr.Range()
			case "loss_report_interval":
				a.LossReportInterval, ds = durationIn(attr, d.ectx, a.LossReportInterval, lossIntervalBound)
			case "pull_policy", "allow":
				ds = decodeImagesAttr(attr, d.ectx, &a.Images)
			case "filter_self":
				var v, ok bool
				v, ok, ds = evalBool(attr, d.ectx)
				if ok {
					a.FilterSelf = v
				}
			case "group":
				a.Group, ds = decodeGroup(attr, d.ectx)
			}
			diags = append(diags, ds...)
		}
		var verifyBlock, containersBlock *hcl.Block
		for _, nb := range content.Blocks {
			switch nb.Type {
			case "containers":
				if containersBlock != nil {
					diags = append(diags, duplicate("containers block", "A containers block", containersBlock.DefRange, nb.DefRange, "An agent has at most one containers block."))
					continue
				}
				containersBlock = nb
				var ds hcl.Diagnostics
				a.Containers, ds = decodeContainers(nb, d.ectx)
				diags = append(diags, ds...)
			case "verify":
				if verifyBlock != nil {
					diags = append(diags, duplicate("verify block", "A verify block", verifyBlock.DefRange, nb.DefRange, "An agent has at most one verify block."))
					continue
				}
				verifyBlock = nb
				diags = append(diags, decodeImagesBlock(nb, d.ectx, &a.Images)...)
			case "registries":
				diags = append(diags, decodeImagesBlock(nb, d.ectx, &a.Images)...)
			case "nats_server":
				if a.NATSServer != nil {
					diags = append(diags, duplicate("nats_server block", "nats_server", a.NATSServer.DefRange, nb.DefRange, "an agent runs at most one embedded NATS server"))
					continue
				}
				var ds hcl.Diagnostics
				a.NATSServer, ds = decodeNATSServer(nb, d.ectx, a.DataDir)
				diags = append(diags, ds...)
			case "control":
				if a.Control != nil {
					diags = append(diags, duplicate("control block", "A control block", a.Control.DefRange, nb.DefRange, "An agent has at most one control block."))
					continue
				}
				var ds hcl.Diagnostics
				a.Control, ds = decodeControl(nb, d.ectx)
				diags = append(diags, ds...)
			}
		}
	}
	if !controlSet {
		a.ControlSocket = filepath.Join(a.DataDir, DefaultControlSocketName)
	}
	if a.Name == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			subject := a.DefRange
			if b == nil {
				subject = hcl.Range{Filename: d.filename, Start: hcl.InitialPos, End: hcl.InitialPos}
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Cannot determine the agent name",
				Detail:   fmt.Sprintf("The agent name defaults to the hostname, which is unavailable (%v); set name in the agent block.", err),
				Subject:  subject.Ptr(),
			})
		}
		a.Name = host
	}
	return a, diags
}

// MaxAgentNameBytes bounds the agent name, as DNS bounds a host name.
const MaxAgentNameBytes = 253

// badAgentName says what is wrong with an agent name, or "".
func badAgentName(name string) string {
	switch {
	case strings.TrimSpace(name) == "":
		return "is only whitespace"
	case strings.TrimSpace(name) != name:
		return "starts or ends with whitespace"
	case len(name) > MaxAgentNameBytes:
		return fmt.Sprintf("is longer than %d bytes", MaxAgentNameBytes)
	case !utf8.ValidString(name):
		return "is not valid UTF-8"
	}
	for _, r := range name {
		// Control characters (escape sequences, newlines) and format
		// characters (bidi overrides) would rewrite terminals and logs.
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return fmt.Sprintf("contains the control character %U", r)
		}
	}
	return ""
}

// The *Or helpers keep the default when the attribute is null or invalid.

func evalNonEmptyOr(attr *hcl.Attribute, ectx *hcl.EvalContext, def string) (string, bool, hcl.Diagnostics) {
	s, ok, diags := evalNonEmpty(attr, ectx)
	if !ok {
		return def, false, diags
	}
	return s, true, diags
}

func enumOr(attr *hcl.Attribute, ectx *hcl.EvalContext, allowed []string, def string) (string, hcl.Diagnostics) {
	s, ok, diags := evalEnum(attr, ectx, allowed)
	if !ok {
		return def, diags
	}
	return s, diags
}

func durationOr[T ~int64](attr *hcl.Attribute, ectx *hcl.EvalContext, def T) (T, hcl.Diagnostics) {
	v, ok, diags := evalDuration(attr, ectx)
	if !ok {
		return def, diags
	}
	return T(v), diags
}

// validName reports a component name that cannot appear in a reference.
func (d *decoder) validName(kind string, b *hcl.Block, labelIndex int, ref string) hcl.Diagnostics {
	name := b.Labels[labelIndex]
	if hclsyntax.ValidIdentifier(name) {
		return nil
	}
	if ref != "" {
		d.unreferenceable[ref] = true
	}
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Invalid %s name", kind),
		Detail: fmt.Sprintf("%q cannot be used in a reference: a name starts with a letter or underscore and holds letters, digits, underscores and dashes.",
			name),
		Subject: b.LabelRanges[labelIndex].Ptr(),
	}}
}

// header decodes the labels of a `KIND "<type>" "<name>"` block into its
// reference and finds the decoder its type registered in types. An unknown
// type is reported (ok = false) and its reference marked broken, so that
// pipelines naming it get no second error; a name no reference can hold is
// reported too.
func header[D any](d *decoder, kind string, b *hcl.Block, types map[string]D) (dec D, ref string, ok bool, diags hcl.Diagnostics) {
	ref = Reference{Kind: kind, Type: b.Labels[0], Name: b.Labels[1]}.String()
	if dec, ok = types[b.Labels[0]]; !ok {
		d.broken[ref] = true
		return dec, ref, false, hcl.Diagnostics{unknownType(kind, b, sortedKeys(types))}
	}
	return dec, ref, true, d.validName(kind, b, 1, ref)
}

func (d *decoder) source(b *hcl.Block) (*Source, hcl.Diagnostics) {
	dec, ref, ok, diags := header(d, KindSource, b, sourceTypes)
	if !ok {
		return nil, diags
	}
	src := &Source{Type: b.Labels[0], Name: b.Labels[1], DefRange: b.DefRange, Ref: ref}
	return src, append(diags, dec(b.Body, d.ectx, src)...)
}

func (d *decoder) sink(b *hcl.Block) (*Sink, hcl.Diagnostics) {
	dec, ref, ok, diags := header(d, KindSink, b, sinkTypes)
	if !ok {
		return nil, diags
	}
	sink := &Sink{Type: b.Labels[0], Name: b.Labels[1], DefRange: b.DefRange, Ref: ref}
	return sink, append(diags, dec(b.Body, d.ectx, sink)...)
}

func (d *decoder) pipeline(b *hcl.Block) (*Pipeline, hcl.Diagnostics) {
	p := &Pipeline{
		Name:     b.Labels[0],
		DefRange: b.DefRange,
		Queue:    DefaultQueue(),
		Batch:    DefaultBatch(),
	}
	diags := d.validName("pipeline", b, 0, "")
	content, ds := b.Body.Content(pipelineSchema)
	diags = append(diags, ds...)

	p.Sources, ds = d.pipelineRefs(p, content.Attributes["sources"], KindSource, "sources")
	diags = append(diags, ds...)
	p.Sinks, ds = d.pipelineRefs(p, content.Attributes["sinks"], KindSink, "sinks")
	diags = append(diags, ds...)
	if a := content.Attributes["stages"]; a != nil {
		// Unlike sources and sinks, a pipeline may have no stages.
		p.Stages, ds = d.refs(a, KindStage)
		diags = append(diags, ds...)
	}

	var queueBlock, batchBlock *hcl.Block
	for _, nb := range content.Blocks {
		switch nb.Type {
		case "queue":
			if queueBlock != nil {
				diags = append(diags, duplicate("queue block", "A queue block", queueBlock.DefRange, nb.DefRange,
					"A pipeline has at most one queue block."))
				continue
			}
			queueBlock = nb
			diags = append(diags, d.queue(nb, &p.Queue)...)
		case "batch":
			if batchBlock != nil {
				diags = append(diags, duplicate("batch block", "A batch block", batchBlock.DefRange, nb.DefRange,
					"A pipeline has at most one batch block."))
				continue
			}
			batchBlock = nb
			diags = append(diags, d.batch(nb, &p.Batch)...)
		}
	}
	return p, diags
}

// pipelineRefs decodes a pipeline's list of references to one kind and
// requires at least one: a pipeline without sources or sinks moves nothing.
func (d *decoder) pipelineRefs(p *Pipeline, attr *hcl.Attribute, kind, attrName string) ([]Reference, hcl.Diagnostics) {
	empty := &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Pipeline has no %s", attrName),
		Detail: fmt.Sprintf("Pipeline %q needs at least one %s: %s = [%s].",
			p.Name, kind, attrName, exampleRef(kind)),
		Subject: p.DefRange.Ptr(),
	}
	if attr == nil {
		return nil, hcl.Diagnostics{empty}
	}
	refs, diags := d.refs(attr, kind)
	if len(refs) == 0 && !diags.HasErrors() {
		empty.Subject = attr.Expr.Range().Ptr()
		diags = append(diags, empty)
	}
	return refs, diags
}

// refs decodes a pipeline's list of references to one kind, noting
// errors in it (which the "unused" warnings would then mostly repeat).
func (d *decoder) refs(attr *hcl.Attribute, kind string) ([]Reference, hcl.Diagnostics) {
	refs, diags := decodeReferences(attr, kind)
	if diags.HasErrors() {
		d.badRefs = true
	}
	return refs, diags
}

func (d *decoder) queue(b *hcl.Block, q *Queue) hcl.Diagnostics {
	content, diags := b.Body.Content(queueSchema)
	if a := content.Attributes["max_events"]; a != nil {
		n, ok, ds := evalIntIn(a, d.ectx, queueEventsBound)
		diags = append(diags, ds...)
		if ok {
			q.MaxEvents = n
		}
	}
	if a := content.Attributes["max_bytes"]; a != nil {
		n, ok, ds := evalSizeIn(a, d.ectx, queueBytesBound)
		diags = append(diags, ds...)
		if ok {
			q.MaxBytes = n
		}
	}
	if a := content.Attributes["when_full"]; a != nil {
		var ds hcl.Diagnostics
		q.WhenFull, ds = enumOr(a, d.ectx, whenFullValues, q.WhenFull)
		diags = append(diags, ds...)
	}
	return diags
}

func (d *decoder) batch(b *hcl.Block, bt *Batch) hcl.Diagnostics {
	content, diags := b.Body.Content(batchSchema)
	if a := content.Attributes["max_events"]; a != nil {
		n, ok, ds := evalIntIn(a, d.ectx, batchEventsBound)
		diags = append(diags, ds...)
		if ok {
			bt.MaxEvents = n
		}
	}
	if a := content.Attributes["max_delay"]; a != nil {
		var ds hcl.Diagnostics
		bt.MaxDelay, ds = durationIn(a, d.ectx, bt.MaxDelay, batchDelayBound)
		diags = append(diags, ds...)
	}
	return diags
}
