package fakeupstream

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// sleep waits ms milliseconds; false when the client went away or the
// Server was closed first.
func (s *Server) sleep(r *http.Request, ms int) bool {
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.closed:
		return false
	}
}

// cut closes the connection abruptly: net/http treats this panic as "abort
// the response" and drops the connection without finishing the body (so a
// chunked stream lacks its terminator, as when an upstream dies).
func cut() {
	panic(http.ErrAbortHandler)
}

// stall holds the response open until the client goes or the Server is
// closed; on close the connection is dropped so the client never sees a
// clean end.
func (s *Server) stall(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-s.closed:
		cut()
	}
}

func setDefaultHeader(h http.Header, key, value string) {
	if h.Get(key) == "" {
		h.Set(key, value)
	}
}

func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, sc Script, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only our own structs get here
		http.Error(w, "fakeupstream: encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	s.writeBody(w, r, sc, status, b)
}

func (s *Server) writeRaw(w http.ResponseWriter, r *http.Request, sc Script, status int) {
	s.writeBody(w, r, sc, status, []byte(sc.Body))
}

// writeBody sends a complete body, or half of it followed by a cut or a
// stall when the script asks for one.
func (s *Server) writeBody(w http.ResponseWriter, r *http.Request, sc Script, status int, b []byte) {
	h := w.Header()
	setDefaultHeader(h, "Content-Type", "application/json")
	setDefaultHeader(h, "X-Request-Id", "req_"+randomID(12))
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	if sc.CutAfterEvents == nil && sc.StallAfterEvents == nil {
		_, _ = w.Write(b)
		return
	}
	_, _ = w.Write(b[:len(b)/2])
	_ = http.NewResponseController(w).Flush()
	if sc.CutAfterEvents != nil {
		cut()
	}
	s.stall(r)
}

// sseStream writes SSE frames with the script's pacing, cut and stall.
type sseStream struct {
	s    *Server
	w    http.ResponseWriter
	r    *http.Request
	rc   *http.ResponseController
	sc   Script
	sent int
	done bool // stalled or client gone: send nothing more
	seq  int  // next sequence_number, for the Responses API
}

// startStream sends the headers of an SSE response.
func (s *Server) startStream(w http.ResponseWriter, r *http.Request, sc Script, status int) *sseStream {
	h := w.Header()
	setDefaultHeader(h, "Content-Type", "text/event-stream; charset=utf-8")
	setDefaultHeader(h, "Cache-Control", "no-cache")
	setDefaultHeader(h, "X-Request-Id", "req_"+randomID(12))
	w.WriteHeader(status)
	st := &sseStream{s: s, w: w, r: r, rc: http.NewResponseController(w), sc: sc}
	_ = st.rc.Flush()
	st.checkpoint()
	return st
}

// checkpoint applies cut or stall once the count of sent events reaches
// the script's.
func (st *sseStream) checkpoint() {
	if c := st.sc.CutAfterEvents; c != nil && st.sent >= *c {
		cut()
	}
	if c := st.sc.StallAfterEvents; c != nil && st.sent >= *c {
		st.s.stall(st.r)
		st.done = true
	}
}

// send writes one frame; false once the stream must stop.
func (st *sseStream) send(frame []byte) bool {
	if st.done {
		return false
	}
	if st.sent > 0 && st.sc.ChunkDelayMS > 0 && !st.s.sleep(st.r, st.sc.ChunkDelayMS) {
		st.done = true
		return false
	}
	if _, err := st.w.Write(frame); err != nil {
		st.done = true
		return false
	}
	if err := st.rc.Flush(); err != nil {
		st.done = true
		return false
	}
	st.sent++
	st.checkpoint()
	return !st.done
}

// event sends "event: <typ>\ndata: <json>\n\n".
func (st *sseStream) event(typ string, v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		st.done = true
		return false
	}
	frame := make([]byte, 0, len(typ)+len(b)+16)
	frame = append(frame, "event: "...)
	frame = append(frame, typ...)
	frame = append(frame, "\ndata: "...)
	frame = append(frame, b...)
	frame = append(frame, "\n\n"...)
	return st.send(frame)
}

// data sends "data: <json>\n\n" (Chat Completions has no event names).
func (st *sseStream) data(v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		st.done = true
		return false
	}
	frame := make([]byte, 0, len(b)+8)
	frame = append(frame, "data: "...)
	frame = append(frame, b...)
	frame = append(frame, "\n\n"...)
	return st.send(frame)
}

// writeRawStream sends a body override as SSE, one frame per blank-line
// separated block.
func (s *Server) writeRawStream(w http.ResponseWriter, r *http.Request, sc Script, status int) {
	st := s.startStream(w, r, sc, status)
	for _, f := range splitFrames([]byte(sc.Body)) {
		if !st.send(f) {
			return
		}
	}
}

// splitFrames cuts b after every "\n\n"; a trailing partial frame is kept.
func splitFrames(b []byte) [][]byte {
	var frames [][]byte
	for len(b) > 0 {
		i := bytes.Index(b, []byte("\n\n"))
		if i < 0 {
			frames = append(frames, b)
			break
		}
		frames = append(frames, b[:i+2])
		b = b[i+2:]
	}
	return frames
}
