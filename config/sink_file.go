package config

import (
	"time"

	"github.com/hashicorp/hcl/v2"
)

func init() { registerSink("file", decodeFileSink) }

// FileSink is the body of a `sink "file"` block.
type FileSink struct {
	// Path is the file to write; its file name may hold time verbs (%Y
	// %m %d %H %M %S %j). A relative path is taken from the agent's
	// data_dir. The agent checks the verbs (PathRange points at it).
	Path      string
	PathRange hcl.Range
	Format    string // json | msgpack

	Rotate    FileRotate
	Retention FileRetention
	Compress  string // none | gzip

	Fsync         string // batch | interval | never
	FsyncInterval time.Duration
}

// FileRotate is the `rotate {}` block of a file sink; zero values turn a
// limit off.
type FileRotate struct {
	MaxSize int64
	MaxAge  time.Duration
}

// FileRetention is the `retention {}` block of a file sink; zero values
// keep everything.
type FileRetention struct {
	MaxFiles int
	MaxAge   time.Duration
}

// Defaults of the file sink.
const (
	DefaultFileFormat        = "json"
	DefaultFileFsync         = "interval"
	DefaultFileFsyncInterval = time.Second
)

var (
	fileFormats  = []string{"json", "msgpack"}
	fileFsyncs   = []string{"batch", "interval", "never"}
	fileCompress = []string{"none", "gzip"}
)

var fileSinkSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "path", Required: true}, {Name: "format"}, {Name: "compress"}, {Name: "fsync"}, {Name: "fsync_interval"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "rotate"}, {Type: "retention"}},
}

var (
	fileRotateSchema    = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "max_size"}, {Name: "max_age"}}}
	fileRetentionSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "max_files"}, {Name: "max_age"}}}
)

// decodeFileSink decodes `sink "file" NAME { ... }`.
func decodeFileSink(body hcl.Body, ectx *hcl.EvalContext, sink *Sink) hcl.Diagnostics {
	out := &FileSink{Format: DefaultFileFormat, Compress: "none", Fsync: DefaultFileFsync, FsyncInterval: DefaultFileFsyncInterval}
	sink.File = out
	content, diags := body.Content(fileSinkSchema)
	if a := content.Attributes["path"]; a != nil {
		out.PathRange = a.Expr.Range()
		var d hcl.Diagnostics
		out.Path, _, d = evalNonEmptyOr(a, ectx, out.Path)
		diags = append(diags, d...)
	}
	if a := content.Attributes["format"]; a != nil {
		out.Format, diags = enumOrAppend(a, ectx, fileFormats, out.Format, diags)
	}
	if a := content.Attributes["compress"]; a != nil {
		out.Compress, diags = enumOrAppend(a, ectx, fileCompress, out.Compress, diags)
	}
	if a := content.Attributes["fsync"]; a != nil {
		out.Fsync, diags = enumOrAppend(a, ectx, fileFsyncs, out.Fsync, diags)
	}
	if a := content.Attributes["fsync_interval"]; a != nil {
		var d hcl.Diagnostics
		out.FsyncInterval, d = durationIn(a, ectx, out.FsyncInterval, fsyncIntervalBound)
		diags = append(diags, d...)
		if out.Fsync != "interval" {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unused fsync_interval",
				Detail:   "fsync_interval applies only with fsync = \"interval\" (the default).",
				Subject:  a.NameRange.Ptr(),
			})
		}
	}
	seen := map[string]hcl.Range{}
	for _, b := range content.Blocks {
		if first, dup := seen[b.Type]; dup {
			diags = append(diags, duplicate(b.Type+" block", "A "+b.Type+" block", first, b.DefRange,
				"A file sink has at most one "+b.Type+" block."))
			continue
		}
		seen[b.Type] = b.DefRange
		switch b.Type {
		case "rotate":
			c, d := b.Body.Content(fileRotateSchema)
			diags = append(diags, d...)
			if a := c.Attributes["max_size"]; a != nil {
				n, ok, d := evalSizeIn(a, ectx, rotateSizeBound)
				diags = append(diags, d...)
				if ok {
					out.Rotate.MaxSize = n
				}
			}
			if a := c.Attributes["max_age"]; a != nil {
				out.Rotate.MaxAge, d = durationIn(a, ectx, out.Rotate.MaxAge, rotateAgeBound)
				diags = append(diags, d...)
			}
		case "retention":
			c, d := b.Body.Content(fileRetentionSchema)
			diags = append(diags, d...)
			if a := c.Attributes["max_files"]; a != nil {
				n, ok, d := evalIntIn(a, ectx, retentionFileBound)
				diags = append(diags, d...)
				if ok {
					out.Retention.MaxFiles = n
				}
			}
			if a := c.Attributes["max_age"]; a != nil {
				out.Retention.MaxAge, d = durationIn(a, ectx, out.Retention.MaxAge, retentionAgeBound)
				diags = append(diags, d...)
			}
		}
	}
	return diags
}
