package fakeupstream

import (
	"net/http"
	"sync"
	"time"
)

// RecordedRequest is one request the fake received, as GET /_fake/requests
// shows it.
type RecordedRequest struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Query  string `json:"query,omitempty"`
	Proto  string `json:"proto,omitempty"` // HTTP/1.1, HTTP/2.0
	// Remote is the client's address: requests of one connection share it.
	Remote  string      `json:"remote,omitempty"`
	Headers http.Header `json:"headers"`
	Body    string      `json:"body"`
	Time    time.Time   `json:"time"`
}

// recorder is a bounded log of requests, oldest first.
type recorder struct {
	mu   sync.Mutex
	reqs []RecordedRequest
}

func (rec *recorder) add(r *http.Request, body []byte, max int) {
	if max <= 0 {
		return
	}
	e := RecordedRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Proto: r.Proto,
		Remote: r.RemoteAddr, Headers: r.Header.Clone(), Body: string(body), Time: time.Now().UTC()}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.reqs) >= max {
		// Drop the oldest; copy down instead of reslicing so the backing
		// array does not grow without bound.
		n := copy(rec.reqs, rec.reqs[len(rec.reqs)-max+1:])
		rec.reqs = rec.reqs[:n]
	}
	rec.reqs = append(rec.reqs, e)
}

func (rec *recorder) list() []RecordedRequest {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	out := make([]RecordedRequest, len(rec.reqs))
	copy(out, rec.reqs)
	return out
}

func (rec *recorder) clear() {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.reqs = nil
}
