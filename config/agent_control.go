package config

import (
	"fmt"
	"regexp"

	"github.com/hashicorp/hcl/v2"
)

// Control is the agent's `control {}` block: how a fleet steers the agent
// from outside. Its only kind so far is a NATS KV bucket.
type Control struct {
	NATS     *ControlNATS
	DefRange hcl.Range
}

// ControlNATS is `control { nats {} }`: the agent watches a NATS KV bucket
// for the version each of its stages must run (key <stage>, or
// <group>.<stage>) and writes what it runs, and how its last swap went,
// into a status bucket. The connection is the agent's own, independent of
// any NATS sink; it authenticates like a NATS sink.
type ControlNATS struct {
	// URL is the server, or a comma-separated list of a cluster's servers.
	URL string
	// Bucket holds the desired versions; StatusBucket what the agents run.
	Bucket, StatusBucket string
	// Replicas is the replication of the buckets when the agent has to
	// create them (1 to 5); buckets that exist are used as they are.
	Replicas int
	NATSAuth
	DefRange hcl.Range
}

// Defaults of the control block.
const (
	DefaultControlBucket = "sluice-stages"
	// StatusBucketSuffix makes the default status bucket's name from the
	// bucket's: "sluice-stages" + "-status".
	StatusBucketSuffix     = "-status"
	DefaultControlReplicas = 1
	maxControlReplicas     = 5
)

// kvToken is what a bucket name, a group and a stage name must look like to
// be (part of) a NATS KV key without escaping.
var kvToken = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

var controlSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "nats"}}}

var controlNATSSchema = &hcl.BodySchema{
	Attributes: append([]hcl.AttributeSchema{{Name: "url"}, {Name: "bucket"}, {Name: "status_bucket"}, {Name: "replicas"}}, natsAuthAttrs...),
	Blocks:     []hcl.BlockHeaderSchema{{Type: "tls"}},
}

// decodeGroup decodes the agent's group attribute.
func decodeGroup(attr *hcl.Attribute, ectx *hcl.EvalContext) (string, hcl.Diagnostics) {
	s, ok, diags := evalNonEmpty(attr, ectx)
	if ok && !kvToken.MatchString(s) {
		return "", append(diags, invalidValue(attr, fmt.Sprintf("group %q names a key prefix in the control bucket (<group>.<stage>): use letters, digits, underscores and dashes.", s)))
	}
	return s, diags
}

// decodeControl decodes `control {}`.
func decodeControl(b *hcl.Block, ectx *hcl.EvalContext) (*Control, hcl.Diagnostics) {
	c := &Control{DefRange: b.DefRange}
	content, diags := b.Body.Content(controlSchema)
	for _, nb := range content.Blocks {
		if c.NATS != nil {
			diags = append(diags, duplicate("nats block", "A nats block", c.NATS.DefRange, nb.DefRange, "The agent has one control connection."))
			continue
		}
		n, ds := decodeControlNATS(nb, ectx)
		diags = append(diags, ds...)
		c.NATS = n
	}
	if c.NATS == nil && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Empty control block",
			Detail:   `control needs a nats block naming the bus the fleet is steered through: control { nats { url = "nats://..." } }.`,
			Subject:  b.DefRange.Ptr(),
		})
	}
	return c, diags
}

func decodeControlNATS(b *hcl.Block, ectx *hcl.EvalContext) (*ControlNATS, hcl.Diagnostics) {
	n := &ControlNATS{URL: DefaultNATSURL, Bucket: DefaultControlBucket, Replicas: DefaultControlReplicas, DefRange: b.DefRange}
	content, diags := b.Body.Content(controlNATSSchema)
	if a := content.Attributes["url"]; a != nil {
		var ds hcl.Diagnostics
		var ok bool
		n.URL, ok, ds = evalNonEmptyOr(a, ectx, n.URL)
		diags = append(diags, ds...)
		if ok {
			if bad := addressDiag(a, CheckNATSURL(n.URL)); bad != nil {
				diags = append(diags, bad)
			}
		}
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"bucket", &n.Bucket}, {"status_bucket", &n.StatusBucket}} {
		a := content.Attributes[f.name]
		if a == nil {
			continue
		}
		s, ok, ds := evalNonEmpty(a, ectx)
		diags = append(diags, ds...)
		switch {
		case ok && !kvToken.MatchString(s):
			diags = append(diags, invalidValue(a, fmt.Sprintf("%q is not a valid KV bucket name: use letters, digits, underscores and dashes.", s)))
		case ok:
			*f.dst = s
		}
	}
	if n.StatusBucket == "" {
		n.StatusBucket = n.Bucket + StatusBucketSuffix
	}
	if a := content.Attributes["status_bucket"]; a != nil && n.StatusBucket == n.Bucket {
		diags = append(diags, invalidValue(a, "status_bucket must differ from bucket: agents write their status there, operators the versions into bucket."))
	}
	if a := content.Attributes["replicas"]; a != nil {
		r, ok, ds := evalPositiveInt(a, ectx)
		diags = append(diags, ds...)
		switch {
		case ok && r > maxControlReplicas:
			diags = append(diags, invalidValue(a, fmt.Sprintf("replicas must be from 1 to %d; got %d.", maxControlReplicas, r)))
		case ok:
			n.Replicas = r
		}
	}
	diags = append(diags, decodeNATSAuth(content, ectx, &n.NATSAuth)...)
	var tlsRange hcl.Range
	for _, tb := range content.Blocks {
		if tlsRange != (hcl.Range{}) {
			diags = append(diags, duplicate("tls block", "A tls block", tlsRange, tb.DefRange, "The control connection has at most one tls block."))
			continue
		}
		tlsRange = tb.DefRange
		diags = append(diags, decodeNATSTLS(tb, ectx, &n.NATSAuth)...)
	}
	return n, append(diags, checkNATSAuth(content, &n.NATSAuth, tlsRange, "the control connection")...)
}
