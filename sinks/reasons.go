package sinks

import (
	"slices"

	"github.com/sluice-dev/sluice/pipeline"
)

// The drop reasons of each sink type besides the pipeline's own
// (sink_error, shutdown), which the pipeline registers at zero when it
// starts (pipeline.DropReasonsReporter).
var (
	natsDropReasons = []string{ReasonSpoolFull, ReasonTooLarge, ReasonRejected, ReasonEncodeError}
	fileDropReasons = []string{ReasonDiskFull, ReasonWriteError, ReasonEncodeError}
)

// DropReasons returns the reasons for which sinks of type sinkType ("nats",
// "file", "stdout") drop events, besides the pipeline's.
func DropReasons(sinkType string) []string {
	switch sinkType {
	case "nats":
		return slices.Clone(natsDropReasons)
	case "file":
		return slices.Clone(fileDropReasons)
	}
	return nil
}

// DropReasons implements pipeline.DropReasonsReporter.
func (s *NATS) DropReasons() []string { return DropReasons("nats") }

// DropReasons implements pipeline.DropReasonsReporter.
func (s *File) DropReasons() []string { return DropReasons("file") }

var (
	_ pipeline.DropReasonsReporter = (*NATS)(nil)
	_ pipeline.DropReasonsReporter = (*File)(nil)
)
