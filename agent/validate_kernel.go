package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/sources"
)

// checkKernel turns what pf finds about each gadget on this host into
// diagnostics at the config value to change: the gadget for its programs,
// ifaces, netns or sample_frequency for theirs. What would stop the agent
// is an error; a program the agent would run without, or a setting no
// program uses, a warning; the checks this process cannot make (tracefs
// is root's) one warning per source, naming them.
func checkKernel(gadgets []*resolvedGadget, pf *sources.Preflight) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, r := range gadgets {
		src := r.source
		var unchecked []string
		for _, f := range pf.Check(r.gadget) {
			subject := settingRange(src, f.Setting)
			d := &hcl.Diagnostic{Subject: rangePtr(subject), Detail: fmt.Sprintf("Source %q: %v.", src.Name, f.Err)}
			switch f.Effect {
			case sources.Refused:
				d.Severity, d.Summary = hcl.DiagError, refusedSummary(f.Err)
			case sources.Skipped:
				d.Severity, d.Summary = hcl.DiagWarning, "Program will not run"
				d.Detail = fmt.Sprintf("Source %q: %v; the agent runs the gadget without it.", src.Name, f.Err)
			case sources.Ignored:
				d.Severity, d.Summary = hcl.DiagWarning, "Setting has no effect"
			case sources.Unchecked:
				unchecked = append(unchecked, f.Err.Error())
				continue
			}
			diags = append(diags, d)
		}
		if len(unchecked) > 0 {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Not checked without privileges",
				Detail: fmt.Sprintf("Source %q: %s. Run `sluice config validate` as root (or as the agent's user) to check them.",
					src.Name, strings.Join(unchecked, "; ")),
				Subject: rangePtr(src.GadgetRange),
			})
		}
	}
	return diags
}

func refusedSummary(err error) string {
	switch {
	case errors.Is(err, sources.ErrNoTarget):
		return "Attach point not found"
	case errors.Is(err, sources.ErrUnsupportedAttach):
		return "Unsupported program type"
	case errors.Is(err, sources.ErrKernelFeature):
		return "Kernel lacks a feature"
	case errors.Is(err, sources.ErrNoInterface):
		return "Missing interfaces"
	}
	return "Gadget cannot attach"
}

// settingRange is where a finding about setting s of src points.
func settingRange(src *config.Source, s sources.Setting) hcl.Range {
	r := src.GadgetRange
	switch s {
	case sources.SettingIfaces:
		r = src.IfacesRange
	case sources.SettingNetNS:
		r = src.NetNSRange
	case sources.SettingSampleFrequency:
		r = src.SampleFrequencyRange
	}
	if r == (hcl.Range{}) {
		// Not set in the config (TC programs without ifaces): the block.
		return src.DefRange
	}
	return r
}

// loadGadgets loads each gadget into the kernel without attaching it (see
// sources.Gadget.Verify), reporting what the kernel refuses at the
// gadget: a verifier rejection with its log's tail as an error, an
// optional program it refused as a warning. ctx stops it between gadgets.
func loadGadgets(ctx context.Context, gadgets []*resolvedGadget) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, r := range gadgets {
		if ctx.Err() != nil {
			return diags
		}
		src := r.source
		skipped, err := r.gadget.Verify()
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Kernel refused the gadget",
				Detail: fmt.Sprintf("Source %q: %v", src.Name, err), Subject: rangePtr(src.GadgetRange)})
			continue
		}
		if len(skipped) > 0 {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Program will not run",
				Detail: fmt.Sprintf("Source %q: the kernel refused the optional programs %s; the agent runs the gadget without them.",
					src.Name, strings.Join(skipped, ", ")),
				Subject: rangePtr(src.GadgetRange)})
		}
	}
	return diags
}
