// Package metrics keeps controlsvc's counters and serves them at GET /metrics in the
// Prometheus text exposition format, version 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format), written
// by hand: a handful of counters does not justify a client library.
package metrics

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// ContentType is the media type of the text exposition format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Counter is a count that only goes up, safe for concurrent use.
type Counter struct{ v atomic.Int64 }

// Add adds n; a negative n is ignored, a counter never goes down.
func (c *Counter) Add(n int64) {
	if n > 0 {
		c.v.Add(n)
	}
}

// Inc adds one.
func (c *Counter) Inc() { c.v.Add(1) }

// Value is the current count.
func (c *Counter) Value() int64 { return c.v.Load() }

// Label is one name="value" pair of a series.
type Label struct{ Name, Value string }

// Registry holds counter families and serves them. The zero value is not usable; use
// NewRegistry.
type Registry struct {
	mu       sync.Mutex
	families []*family // in the order of registration
	byName   map[string]*family
}

type family struct {
	name, help string
	series     []series
}

type series struct {
	labels string // rendered: {a="b",c="d"}, or "" without labels
	c      *Counter
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{byName: make(map[string]*family)}
}

// Counter returns the counter of the series name{labels}, registering it on first use.
// Names must be valid Prometheus metric and label names (the callers use constants); help
// is the family's description, taken from its first registration.
func (r *Registry) Counter(name, help string, labels ...Label) *Counter {
	rendered := renderLabels(labels)
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.byName[name]
	if !ok {
		f = &family{name: name, help: help}
		r.byName[name] = f
		r.families = append(r.families, f)
	}
	for _, s := range f.series {
		if s.labels == rendered {
			return s.c
		}
	}
	c := &Counter{}
	f.series = append(f.series, series{labels: rendered, c: c})
	return c
}

// ServeHTTP writes every family: HELP, TYPE and one line per series.
func (r *Registry) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Cache-Control", "no-store")
	bw := bufio.NewWriter(w)
	r.write(bw)
	_ = bw.Flush()
}

func (r *Registry) write(w *bufio.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.families {
		w.WriteString("# HELP " + f.name + " " + escapeHelp(f.help) + "\n")
		w.WriteString("# TYPE " + f.name + " counter\n")
		for _, s := range f.series {
			w.WriteString(f.name + s.labels + " " + strconv.FormatInt(s.c.Value(), 10) + "\n")
		}
	}
}

func renderLabels(labels []Label) string {
	if len(labels) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range labels {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l.Name + `="` + escapeLabel(l.Value) + `"`)
	}
	b.WriteByte('}')
	return b.String()
}

// The format escapes backslash and newline in HELP text, and also the double quote in
// label values.
var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }
