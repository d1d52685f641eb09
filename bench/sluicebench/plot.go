package main

import (
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// plotSoak draws the soak's RSS, events/s, queue fill, kernel losses and
// the shared machine's state over time, one panel each, into a PNG.
func plotSoak(res *soakResult, path string) error {
	series := func(y func(soakSample) float64) plotter.XYs {
		xy := make(plotter.XYs, len(res.Samples))
		for i, s := range res.Samples {
			xy[i].X, xy[i].Y = s.T, y(s)
		}
		return xy
	}
	panel := func(title, ylabel string, lines ...any) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = "seconds"
		p.Y.Label.Text = ylabel
		p.Y.Min = 0
		p.Add(plotter.NewGrid())
		for i := 0; i+1 < len(lines); i += 2 {
			l, err := plotter.NewLine(lines[i+1].(plotter.XYs))
			if err != nil {
				return nil, err
			}
			l.Color = palette[i/2%len(palette)]
			l.Width = vg.Points(1)
			p.Add(l)
			p.Legend.Add(lines[i].(string), l)
		}
		p.Legend.Top = true
		return p, nil
	}
	rss, err := panel("agent RSS and where it is", "MB",
		"RSS", series(func(s soakSample) float64 { return s.RSSMB }),
		"anonymous", series(func(s soakSample) float64 { return s.AnonMB }),
		"Go heap in use", series(func(s soakSample) float64 { return s.HeapMB }),
		"Go heap goal", series(func(s soakSample) float64 { return s.HeapGoalMB }),
		"queued events", series(func(s soakSample) float64 { return s.QueuedMB }))
	if err != nil {
		return err
	}
	rate, err := panel("events/s delivered", "events/s",
		"file sink", series(func(s soakSample) float64 { return s.FilePerSec }),
		"JetStream sink", series(func(s soakSample) float64 { return s.JSPerSec }))
	if err != nil {
		return err
	}
	fill, err := panel("queue fill", "% of max_events",
		"pipeline (before the stage)", series(func(s soakSample) float64 { return s.EdgeFill }),
		"JetStream sink", series(func(s soakSample) float64 { return s.BusFill }),
		"file sink", series(func(s soakSample) float64 { return s.FileFill }))
	if err != nil {
		return err
	}
	lost, err := panel("kernel losses and the producer's backlog", "records",
		"lost in the kernel per second", series(func(s soakSample) float64 { return s.KernelLost }),
		"most due at one tick of the producer (50 on time)", series(func(s soakSample) float64 { return s.ProducerLate }))
	if err != nil {
		return err
	}
	machine, err := panel("the shared machine", "% of one core",
		"agent CPU", series(func(s soakSample) float64 { return s.AgentCPU }),
		"agent's threads waiting for a CPU", series(func(s soakSample) float64 { return s.AgentWait }),
		"load average x 10", series(func(s soakSample) float64 { return 10 * s.Load1 }))
	if err != nil {
		return err
	}
	const w, h = 10 * vg.Inch, 15 * vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(96))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 5, Cols: 1, PadY: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	plots := [][]*plot.Plot{{rss}, {rate}, {fill}, {lost}, {machine}}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	return savePNG(img, path)
}

var palette = []color.Color{
	color.RGBA{R: 31, G: 119, B: 180, A: 255},
	color.RGBA{R: 214, G: 39, B: 40, A: 255},
	color.RGBA{R: 44, G: 160, B: 44, A: 255},
	color.RGBA{R: 148, G: 103, B: 189, A: 255},
	color.RGBA{R: 255, G: 127, B: 14, A: 255},
}
