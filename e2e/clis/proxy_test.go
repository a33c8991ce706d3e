package clis

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// seen is one request a CLI sent and the status the gateway answered it with.
type seen struct {
	Method, Path, Query string
	Status              int
	ErrorBody           string // the body of an answer >= 400, for the failure message
	Body                string // the request body (model calls only)
}

func (s seen) String() string {
	q := ""
	if s.Query != "" {
		q = "?" + s.Query
	}
	return s.Method + " " + s.Path + q + " -> " + http.StatusText(s.Status) + " " + strings.TrimSpace(s.ErrorBody)
}

// recorder sits between a CLI and Traefik and logs every request with the gateway's
// status: the CLI's side of the conversation, whatever endpoints it calls. It forwards
// unchanged (streams flushed at once) and adds no forwarding headers.
type recorder struct {
	URL      string
	mu       sync.Mutex
	log      []seen
	inFlight sync.WaitGroup // a CLI may exit before the handler of its last answer returns
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	target, err := url.Parse(gw.GatewayURL)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	proxy := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target); r.Out.Host = r.In.Host },
		FlushInterval: -1,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.inFlight.Add(1)
		defer rec.inFlight.Done()
		s := seen{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery}
		if isModelCall(r.URL.Path) {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			s.Body = string(b)
		}
		sw := &statusWriter{ResponseWriter: w}
		// Logged even when the proxy aborts the handler (it panics with
		// http.ErrAbortHandler when a CLI hangs up after the last event it waits for).
		defer func() {
			s.Status, s.ErrorBody = sw.status, sw.errBody.String()
			rec.mu.Lock()
			rec.log = append(rec.log, s)
			rec.mu.Unlock()
		}()
		proxy.ServeHTTP(sw, r)
	}))
	t.Cleanup(srv.Close)
	rec.URL = srv.URL
	return rec
}

// requests are the logged requests once none is in flight any more.
func (rec *recorder) requests() []seen {
	rec.inFlight.Wait()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]seen(nil), rec.log...)
}

// statusWriter notes the status and keeps the start of an error body.
type statusWriter struct {
	http.ResponseWriter
	status  int
	errBody bytes.Buffer
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.status >= 400 && w.errBody.Len() < 4096 {
		w.errBody.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
