package bench

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// The charts of the HTML report are drawn here as inline SVG, so the page
// needs no script, font or network to open.

// levelColors gives every level one colour in every chart.
var levelColors = map[string]string{
	"one":    "#f28e2b",
	"quorum": "#4e79a7",
	"all":    "#9c6fb6",
	"strong": "#d62728",
}

var fallbackColors = []string{"#59a14f", "#edc948", "#76b7b2", "#ff9da7", "#9c755f"}

func levelColor(level string, i int) string {
	if c, ok := levelColors[level]; ok {
		return c
	}
	return fallbackColors[i%len(fallbackColors)]
}

// series is one coloured set of values in a chart.
type series struct {
	name   string
	color  string
	values []float64 // NaN: no value
	dashed bool
	// width is the line width; 0 means the default.
	width float64
}

// widenEarlier sets decreasing line widths, so that where later series lie
// on top of earlier ones (several levels all at 100% fresh) the earlier
// still show at the edges.
func widenEarlier(ss []series) {
	for i := range ss {
		ss[i].width = defaultLineWidth + 1.5*float64(len(ss)-1-i)
	}
}

// chart geometry, in SVG user units (the SVG scales to the page width).
const (
	chartW      = 1000
	chartH      = 340
	padLeft     = 70
	padRight    = 45
	padTop      = 62
	padBottom   = 60
	plotW       = chartW - padLeft - padRight
	plotH       = chartH - padTop - padBottom
	fontAxis    = 12
	fontLabel   = 10
	legendSwW   = 14
	legendGap   = 18
	legendCharW = 7

	defaultLineWidth = 2.25
)

func esc(s string) string { return html.EscapeString(s) }

// niceStep returns a step of 1, 2 or 5 times a power of ten giving about n
// intervals over span.
func niceStep(span float64, n int) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

func fmtNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", v), "0"), ".")
	case math.Abs(v) >= 1:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
	}
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}

func svgOpen(b *strings.Builder, title string) {
	fmt.Fprintf(b, `<svg class="chart" viewBox="0 0 %d %d" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="%s">`, chartW, chartH, esc(title))
	fmt.Fprintf(b, `<rect x="0" y="0" width="%d" height="%d" fill="#fff"/>`, chartW, chartH)
	fmt.Fprintf(b, `<text x="%d" y="22" font-size="15" font-weight="600" fill="#222">%s</text>`, padLeft, esc(title))
}

// legend draws the series names in a row under the title.
func legend(b *strings.Builder, ss []series) {
	x := float64(padLeft)
	for _, s := range ss {
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="4 3"`
		}
		fmt.Fprintf(b, `<line x1="%.1f" y1="40" x2="%.1f" y2="40" stroke="%s" stroke-width="4"%s/>`, x, x+legendSwW, s.color, dash)
		fmt.Fprintf(b, `<text x="%.1f" y="44" font-size="%d" fill="#333">%s</text>`, x+legendSwW+5, fontAxis, esc(s.name))
		x += float64(legendSwW+6+len(s.name)*legendCharW) + legendGap
	}
}

// yAxis draws horizontal grid lines and labels from toY(v) for ticks.
func yAxis(b *strings.Builder, ticks []float64, toY func(float64) float64, label func(float64) string, title string) {
	for _, t := range ticks {
		y := toY(t)
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e6e6e6"/>`, padLeft, y, chartW-padRight, y)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" font-size="%d" fill="#555" text-anchor="end">%s</text>`, padLeft-6, y+4, fontAxis, esc(label(t)))
	}
	fmt.Fprintf(b, `<text transform="translate(16 %d) rotate(-90)" font-size="%d" fill="#555" text-anchor="middle">%s</text>`, padTop+plotH/2, fontAxis, esc(title))
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>`, padLeft, padTop+plotH, chartW-padRight, padTop+plotH)
}

func xTitle(b *strings.Builder, title string) {
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="%d" fill="#555" text-anchor="middle">%s</text>`, padLeft+plotW/2, chartH-12, fontAxis, esc(title))
}

// logBarChart draws grouped bars on a logarithmic y axis: one group per
// label, one bar per series, with the value written above each bar.
func logBarChart(title string, groups []string, ss []series, yTitle string) string {
	var b strings.Builder
	svgOpen(&b, title)
	lo, hi := math.Inf(1), 0.0
	for _, s := range ss {
		for _, v := range s.values {
			if v > 0 && !math.IsNaN(v) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if hi == 0 {
		lo, hi = 0.1, 1
	}
	dlo := math.Floor(math.Log10(lo))
	dhi := math.Ceil(math.Log10(hi) + 0.15) // headroom for the value labels
	if dhi <= dlo {
		dhi = dlo + 1
	}
	toY := func(v float64) float64 {
		f := (math.Log10(v) - dlo) / (dhi - dlo)
		return float64(padTop+plotH) - f*plotH
	}
	var ticks []float64
	for d := dlo; d <= dhi; d++ {
		ticks = append(ticks, math.Pow(10, d))
	}
	yAxis(&b, ticks, toY, fmtNum, yTitle)
	gw := float64(plotW) / float64(len(groups))
	inner := gw * 0.8
	bw := inner / float64(max(1, len(ss)))
	for gi, g := range groups {
		gx := float64(padLeft) + gw*float64(gi) + (gw-inner)/2
		for si, s := range ss {
			if gi >= len(s.values) || math.IsNaN(s.values[gi]) {
				continue
			}
			v := s.values[gi]
			x := gx + bw*float64(si)
			vy := toY(math.Max(v, math.Pow(10, dlo)))
			base := float64(padTop + plotH)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s ms</title></rect>`,
				x+1, vy, bw-2, math.Max(0, base-vy), s.color, esc(s.name), esc(g), fmtNum(v))
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="%d" fill="#333" text-anchor="middle">%s</text>`, x+bw/2, vy-4, fontLabel, fmtNum(v))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="%d" fill="#333" text-anchor="middle">%s</text>`, gx+inner/2, padTop+plotH+18, fontAxis, esc(g))
	}
	legend(&b, ss)
	xTitle(&b, "percentile")
	b.WriteString(`</svg>`)
	return b.String()
}

// lineChart draws series over x values xs (evenly spaced by index when
// categorical, else by value), on a linear y axis from yMin to yMax (yMax
// <= yMin: fitted to the data).
func lineChart(title string, xs []float64, xLabel func(float64) string, categorical bool, ss []series, xTitleText, yTitle string, yMin, yMax float64, yLabel func(float64) string) string {
	var b strings.Builder
	svgOpen(&b, title)
	if yMax <= yMin {
		yMin, yMax = 0, 0
		for _, s := range ss {
			for _, v := range s.values {
				if !math.IsNaN(v) {
					yMax = math.Max(yMax, v)
				}
			}
		}
		if yMax == 0 {
			yMax = 1
		}
		step := niceStep(yMax, 5)
		yMax = math.Ceil(yMax*1.05/step) * step
	}
	toY := func(v float64) float64 {
		return float64(padTop+plotH) - (v-yMin)/(yMax-yMin)*plotH
	}
	step := niceStep(yMax-yMin, 5)
	var ticks []float64
	for t := math.Ceil(yMin/step) * step; t <= yMax+step/1e6; t += step {
		ticks = append(ticks, t)
	}
	yAxis(&b, ticks, toY, yLabel, yTitle)
	xmin, xmax := 0.0, 1.0
	if len(xs) > 0 {
		xmin, xmax = xs[0], xs[len(xs)-1]
	}
	toX := func(i int) float64 {
		if categorical {
			if len(xs) <= 1 {
				return float64(padLeft) + plotW/2
			}
			return float64(padLeft) + float64(i)/float64(len(xs)-1)*plotW
		}
		if xmax == xmin {
			return float64(padLeft) + plotW/2
		}
		return float64(padLeft) + (xs[i]-xmin)/(xmax-xmin)*plotW
	}
	// x labels: every point when categorical, else about 10.
	every := 1
	if !categorical && len(xs) > 12 {
		every = int(math.Ceil(float64(len(xs)) / 10))
	}
	for i := range xs {
		if i%every != 0 && i != len(xs)-1 {
			continue
		}
		x := toX(i)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999"/>`, x, padTop+plotH, x, padTop+plotH+4)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="%d" fill="#333" text-anchor="middle">%s</text>`, x, padTop+plotH+18, fontAxis, esc(xLabel(xs[i])))
	}
	for _, s := range ss {
		width := s.width
		if width == 0 {
			width = defaultLineWidth
		}
		var pts []string
		for i, v := range s.values {
			if i >= len(xs) || math.IsNaN(v) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", toX(i), toY(math.Max(yMin, math.Min(yMax, v)))))
		}
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		if len(pts) > 1 {
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="%.1f" stroke-linejoin="round" stroke-linecap="round"%s/>`, strings.Join(pts, " "), s.color, width, dash)
		}
		if len(pts) <= 40 {
			for i, v := range s.values {
				if i >= len(xs) || math.IsNaN(v) {
					continue
				}
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="%.1f" fill="%s"><title>%s %s: %s</title></circle>`,
					toX(i), toY(math.Max(yMin, math.Min(yMax, v))), width/2+1, s.color, esc(s.name), esc(xLabel(xs[i])), esc(yLabel(v)))
			}
		}
	}
	legend(&b, ss)
	xTitle(&b, xTitleText)
	b.WriteString(`</svg>`)
	return b.String()
}
