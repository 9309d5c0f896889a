package report

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
)

// chart is an XY chart rendered as inline SVG: bars (a histogram), lines
// with point markers, and labelled vertical/horizontal reference lines.
// Every text it writes is escaped; numbers are formatted by the chart.
type chart struct {
	title          string
	xLabel, yLabel string
	xFmt, yFmt     func(float64) string
	xMin, xMax     float64
	yMin, yMax     float64
	xLog           bool // log2 x axis (sweep loads 1, 2, 4, 8, ...)
	xTicks         []float64

	bars   []bar
	lines  []series
	vlines []refLine
	hlines []refLine
}

type bar struct{ x0, x1, y float64 }

type series struct {
	name  string
	color string
	pts   [][2]float64
	dash  bool
}

type refLine struct {
	at    float64
	label string
	color string
}

const (
	chartW, chartH = 640, 300
	padL, padR     = 64, 20
	padT, padB     = 52, 48
	barColor       = "#7aa6d8"
)

func (c *chart) px(x float64) float64 {
	lo, hi := c.xMin, c.xMax
	if c.xLog {
		x, lo, hi = math.Log2(x), math.Log2(lo), math.Log2(hi)
	}
	if hi == lo {
		return padL + (chartW-padL-padR)/2
	}
	return padL + (x-lo)/(hi-lo)*(chartW-padL-padR)
}

func (c *chart) py(y float64) float64 {
	if c.yMax == c.yMin {
		return chartH - padB
	}
	return chartH - padB - (y-c.yMin)/(c.yMax-c.yMin)*(chartH-padT-padB)
}

// svg renders the chart. The result is safe to embed in HTML.
func (c *chart) svg() template.HTML {
	var b strings.Builder
	esc := html.EscapeString
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`, chartW, chartH, esc(c.title))
	fmt.Fprintf(&b, `<title>%s</title>`, esc(c.title))
	fmt.Fprintf(&b, `<text x="%d" y="22" class="ct">%s</text>`, padL, esc(c.title))

	// Y grid and ticks.
	for _, t := range niceTicks(c.yMin, c.yMax, 5) {
		y := c.py(t)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" class="grid"/>`, padL, chartW-padR, y, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" class="tick" text-anchor="end">%s</text>`, padL-6, y+4, esc(c.yFmt(t)))
	}
	// X ticks.
	xt := c.xTicks
	if xt == nil {
		xt = niceTicks(c.xMin, c.xMax, 6)
	}
	for _, t := range xt {
		x := c.px(t)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" class="axis"/>`, x, x, chartH-padB, chartH-padB+4)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="tick" text-anchor="middle">%s</text>`, x, chartH-padB+17, esc(c.xFmt(t)))
	}
	// Axis labels.
	fmt.Fprintf(&b, `<text x="%d" y="%d" class="al" text-anchor="middle">%s</text>`, (padL+chartW-padR)/2, chartH-8, esc(c.xLabel))
	fmt.Fprintf(&b, `<text x="14" y="%d" class="al" text-anchor="middle" transform="rotate(-90 14 %d)">%s</text>`, (padT+chartH-padB)/2, (padT+chartH-padB)/2, esc(c.yLabel))

	for _, br := range c.bars {
		x0, x1 := c.px(br.x0), c.px(br.x1)
		y := c.py(br.y)
		w := math.Max(x1-x0-1, 0.5)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`, x0+0.5, y, w, c.py(c.yMin)-y, barColor)
	}
	for i, l := range c.hlines {
		y := c.py(l.at)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="6 4" stroke-width="1.5"/>`, padL, chartW-padR, y, y, l.color)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" class="ref" fill="%s" text-anchor="end">%s</text>`, chartW-padR-4, y-4-float64(i%2)*12, l.color, esc(l.label))
	}
	// Vertical markers are labelled in a legend under the title, so close
	// percentiles do not overlap.
	lx := float64(padL)
	for _, l := range c.vlines {
		x := c.px(l.at)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="%s" stroke-dasharray="4 3" stroke-width="1.5"><title>%s</title></line>`, x, x, padT, chartH-padB, l.color, esc(l.label))
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="36" y2="36" stroke="%s" stroke-dasharray="4 3" stroke-width="2"/>`, lx, lx+14, l.color)
		fmt.Fprintf(&b, `<text x="%.1f" y="40" class="ref" fill="%s">%s</text>`, lx+18, l.color, esc(l.label))
		lx += 18 + 6.5*float64(len([]rune(l.label))) + 14
	}
	for _, s := range c.lines {
		if len(s.pts) == 0 {
			continue
		}
		var pts []string
		for _, p := range s.pts {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", c.px(p[0]), c.py(p[1])))
		}
		dash := ""
		if s.dash {
			dash = ` stroke-dasharray="6 3"`
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`, strings.Join(pts, " "), s.color, dash)
		if len(s.pts) <= 40 {
			for _, p := range s.pts {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s: %s, %s</title></circle>`, c.px(p[0]), c.py(p[1]), s.color, esc(s.name), esc(c.xFmt(p[0])), esc(c.yFmt(p[1])))
			}
		}
	}
	// Legend for named series.
	lx = float64(chartW - padR)
	for i := len(c.lines) - 1; i >= 0; i-- {
		s := c.lines[i]
		if s.name == "" {
			continue
		}
		lx -= 14 + 7*float64(len([]rune(s.name))) + 16
		fmt.Fprintf(&b, `<rect x="%.1f" y="12" width="12" height="12" fill="%s"/><text x="%.1f" y="22" class="tick">%s</text>`, lx, s.color, lx+16, esc(s.name))
	}
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" class="axis"/>`, padL, chartW-padR, chartH-padB, chartH-padB)
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" class="axis"/>`, padL, padL, padT-6, chartH-padB)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// niceTicks returns about n round tick values (1, 2 or 5 times a power of
// ten) covering [lo, hi].
func niceTicks(lo, hi float64, n int) []float64 {
	if !(hi > lo) || math.IsInf(hi-lo, 0) || math.IsNaN(hi-lo) {
		return []float64{lo}
	}
	step := niceStep((hi - lo) / float64(n))
	var out []float64
	first := math.Ceil(lo/step-1e-9) * step
	// Count ticks rather than add steps: at huge magnitudes lo+step may
	// equal lo.
	for i := 0; i <= 3*n; i++ {
		t := first + float64(i)*step
		if t > hi+step*1e-9 {
			break
		}
		v := math.Round(t/step) * step
		if v == 0 {
			v = 0 // not -0
		}
		out = append(out, v)
	}
	return out
}

func niceStep(raw float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// niceMax rounds hi up to the next tick so charts end on a round number.
func niceMax(hi float64) float64 {
	if hi <= 0 {
		return 1
	}
	step := niceStep(hi / 5)
	return math.Ceil(hi/step-1e-9) * step
}

// histogram bins sorted samples into about n bins between 0 and their max,
// returning the bars (as percentages of samples) and the x range.
func histogram(samples []float64, n int) (bars []bar, lo, hi float64) {
	if len(samples) == 0 {
		return nil, 0, 1
	}
	lo, hi = 0, niceMax(samples[len(samples)-1])
	if samples[0] > hi/2 {
		// Narrow distributions far from zero: start near the minimum.
		step := niceStep((hi - samples[0]) / 5)
		lo = math.Floor(samples[0]/step) * step
	}
	width := (hi - lo) / float64(n)
	counts := make([]int, n)
	for _, v := range samples {
		i := int((v - lo) / width)
		if i >= n {
			i = n - 1
		}
		if i < 0 {
			i = 0
		}
		counts[i]++
	}
	for i, c := range counts {
		if c > 0 {
			bars = append(bars, bar{x0: lo + float64(i)*width, x1: lo + float64(i+1)*width, y: 100 * float64(c) / float64(len(samples))})
		}
	}
	return bars, lo, hi
}
