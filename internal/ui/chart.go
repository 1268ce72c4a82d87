package ui

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// chart is an inline SVG line chart of one metric by version, drawn from
// the versions on the page (so its cost is bounded like the table's), with
// a marker on each version that holds a stage.
type chart struct {
	Metric         string
	Width, Height  int
	Points         string // polyline points
	Dots           []chartDot
	Markers        []chartMarker
	MinY, MaxY     string
	MinX, MaxX     int64
	Left, Right    int
	Top, Bottom    int
	AxisY, AxisX   int
	LabelY, LabelX int
	Count          int
}

type chartDot struct {
	X, Y  int
	Title string
	Href  string
}

type chartMarker struct {
	X     int
	Label string
	Y     int
}

const (
	chartWidth  = 720
	chartHeight = 220
	chartLeft   = 56
	chartRight  = 16
	chartTop    = 24
	chartBottom = 28
)

func buildChart(model, metric string, versions []registry.ModelVersion, stages []registry.StageAssignment) *chart {
	type pt struct {
		v int64
		y float64
	}
	var pts []pt
	for _, v := range versions {
		if y, ok := v.Metrics[metric]; ok {
			pts = append(pts, pt{v.Version, y})
		}
	}
	if len(pts) == 0 {
		return nil
	}
	slices.SortFunc(pts, func(a, b pt) int { return int(a.v - b.v) })
	minX, maxX := pts[0].v, pts[len(pts)-1].v
	minY, maxY := pts[0].y, pts[0].y
	for _, p := range pts {
		minY, maxY = min(minY, p.y), max(maxY, p.y)
	}
	if maxY == minY {
		minY, maxY = minY-0.5, maxY+0.5
	}
	c := &chart{
		Metric: metric, Width: chartWidth, Height: chartHeight,
		MinY: fmtMetric(minY), MaxY: fmtMetric(maxY), MinX: minX, MaxX: maxX,
		Left: chartLeft, Right: chartWidth - chartRight, Top: chartTop, Bottom: chartHeight - chartBottom,
		Count: len(pts),
	}
	c.AxisY, c.AxisX = c.Left, c.Bottom
	c.LabelY, c.LabelX = c.Left-6, c.Bottom+16
	plotW, plotH := float64(c.Right-c.Left), float64(c.Bottom-c.Top)
	x := func(v int64) int {
		if maxX == minX {
			return c.Left + int(plotW/2)
		}
		return c.Left + int(float64(v-minX)/float64(maxX-minX)*plotW)
	}
	y := func(f float64) int { return c.Bottom - int((f-minY)/(maxY-minY)*plotH) }
	var b strings.Builder
	c.Dots = make([]chartDot, len(pts))
	for i, p := range pts {
		px, py := x(p.v), y(p.y)
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(px))
		b.WriteByte(',')
		b.WriteString(strconv.Itoa(py))
		c.Dots[i] = chartDot{X: px, Y: py, Title: fmt.Sprintf("v%d: %s = %s", p.v, metric, fmtMetric(p.y)),
			Href: "/ui/models/" + url.PathEscape(model) + "/versions/" + strconv.FormatInt(p.v, 10)}
	}
	c.Points = b.String()
	held := map[int64][]string{}
	for _, s := range stages {
		held[s.Version] = append(held[s.Version], s.Stage)
	}
	for _, p := range pts {
		if names, ok := held[p.v]; ok {
			c.Markers = append(c.Markers, chartMarker{X: x(p.v), Y: c.Top - 6, Label: strings.Join(names, ", ")})
		}
	}
	return c
}
