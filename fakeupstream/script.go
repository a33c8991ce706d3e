package fakeupstream

import (
	"encoding/json"
	"fmt"
)

// Defaults of a request without a script.
const (
	DefaultText         = "Hello from the fake upstream."
	DefaultInputTokens  = 12
	DefaultOutputTokens = 5
)

// Script programs the answer to a request. The zero value answers like a
// healthy upstream: status 200, DefaultText, the default usage.
type Script struct {
	// Status is the HTTP status; 0 means 200. A status >= 400 without Body
	// answers with an error object in the API's format.
	Status int `json:"status,omitempty"`
	// Headers are set on the response (after the defaults, so they win).
	Headers map[string]string `json:"headers,omitempty"`
	// Body replaces the generated body verbatim. In JSON it may be a string
	// or any JSON value. On a streaming request with status < 400 it is sent
	// as SSE frames split at blank lines, with the stream controls applied.
	Body RawBody `json:"body,omitempty"`
	// DelayMS waits before the response headers.
	DelayMS int `json:"delay_ms,omitempty"`
	// ChunkDelayMS waits between SSE events.
	ChunkDelayMS int `json:"chunk_delay_ms,omitempty"`
	// Text is the answer text; "" means DefaultText.
	Text string `json:"text,omitempty"`
	// Usage is the reported usage; nil means the default usage.
	Usage *Usage `json:"usage,omitempty"`
	// CutAfterEvents closes the connection abruptly after that many SSE
	// events (0: right after the headers). On a non-streaming request any
	// value cuts after half of the body.
	CutAfterEvents *int `json:"cut_after_events,omitempty"`
	// StallAfterEvents stops sending after that many SSE events and holds
	// the connection open until the client goes or the Server is closed. On
	// a non-streaming request any value stalls after half of the body.
	StallAfterEvents *int `json:"stall_after_events,omitempty"`
	// ResetBeforeHeaders aborts the connection once the request was read,
	// before any response byte (after DelayMS): the client's request was
	// sent and it gets no answer, a transport failure.
	ResetBeforeHeaders bool `json:"reset_before_headers,omitempty"`
	// Times limits a credential script to the next Times requests, after
	// which the credential gets the default again; 0 means forever. It is
	// ignored in X-Fake-Script.
	Times int `json:"times,omitempty"`
	// Models answers a request whose body names one of its models with that script
	// instead (models.go).
	Models map[string]Script `json:"models,omitempty"`
	// ToolCall answers with a call of this tool instead of text, in the API's own shape
	// (toolcall.go).
	ToolCall *ToolCall `json:"tool_call,omitempty"`
	// AfterToolResult answers a request that carries a tool result (the client ran a tool
	// and sends its output back) with this script instead: an agent's "call a tool, then
	// answer" turn under one credential (toolcall.go). Its own Models, Times and
	// AfterToolResult are not consulted.
	AfterToolResult *Script `json:"after_tool_result,omitempty"`
	// PromptCache, on /v1/messages, reports that many prompt tokens of a request with
	// cache_control breakpoints as written to the cache on the credential's first such
	// request and as read from it on later ones (promptcache.go). Generated bodies only.
	PromptCache int `json:"prompt_cache,omitempty"`
}

// Usage is the token usage a script reports, counted the OpenAI way:
// InputTokens includes CachedTokens (and CacheCreationTokens). On
// /v1/messages the fake reports them the Anthropic way, where input_tokens
// excludes both, so the same script yields the same billable split on
// every API.
type Usage struct {
	InputTokens         int `json:"input_tokens"`
	CachedTokens        int `json:"cached_tokens"`
	CacheCreationTokens int `json:"cache_creation_tokens"`
	OutputTokens        int `json:"output_tokens"`
	ReasoningTokens     int `json:"reasoning_tokens"`
}

// RawBody is a body override: a JSON string is taken as the body text, any
// other JSON value as its own encoding.
type RawBody string

// UnmarshalJSON implements json.Unmarshaler.
func (b *RawBody) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		*b = RawBody(s)
		return nil
	}
	if string(data) == "null" {
		*b = ""
		return nil
	}
	*b = RawBody(data)
	return nil
}

// Events returns a pointer to n, for CutAfterEvents and StallAfterEvents.
func Events(n int) *int { return &n }

// ParseScript decodes a Script from JSON and checks it.
func ParseScript(data []byte) (Script, error) {
	var s Script
	if err := json.Unmarshal(data, &s); err != nil {
		return Script{}, fmt.Errorf("decoding script: %w", err)
	}
	if err := s.validate(); err != nil {
		return Script{}, err
	}
	return s, nil
}

func (s Script) validate() error {
	switch {
	case s.Status != 0 && (s.Status < 100 || s.Status > 599):
		return fmt.Errorf("status %d is not an HTTP status", s.Status)
	case s.DelayMS < 0 || s.ChunkDelayMS < 0:
		return fmt.Errorf("delays must not be negative")
	case s.Times < 0:
		return fmt.Errorf("times must not be negative")
	case s.CutAfterEvents != nil && *s.CutAfterEvents < 0,
		s.StallAfterEvents != nil && *s.StallAfterEvents < 0:
		return fmt.Errorf("event counts must not be negative")
	}
	if err := s.validateToolCall(); err != nil {
		return err
	}
	if s.Usage != nil {
		u := s.Usage
		if u.InputTokens < 0 || u.CachedTokens < 0 || u.CacheCreationTokens < 0 || u.OutputTokens < 0 || u.ReasoningTokens < 0 {
			return fmt.Errorf("usage must not be negative")
		}
	}
	return nil
}

func (s Script) status() int {
	if s.Status == 0 {
		return 200
	}
	return s.Status
}

func (s Script) text() string {
	if s.Text == "" {
		return DefaultText
	}
	return s.Text
}

func (s Script) usage() Usage {
	if s.Usage == nil {
		return Usage{InputTokens: DefaultInputTokens, OutputTokens: DefaultOutputTokens}
	}
	return *s.Usage
}
