package convert

import "github.com/poolgate/poolgate/plugin/jsonsse"

// Automatic prompt caching of a converted request (docs/design.md, "Conversion rules for
// agents"): Responses clients cannot mark cache breakpoints, and without them every agent
// turn on Claude pays the full input price. Up to maxCacheBreakpoints (Anthropic's limit)
// cache_control breakpoints go, in this order, on the last tool, the system prompt, and the
// last block of the last two user messages; breakpoints already present count against the
// limit.

const maxCacheBreakpoints = 4

var ephemeral = &cacheControl{Type: "ephemeral"}

// addCacheBreakpoints places the breakpoints on r.
func addCacheBreakpoints(r *messagesRequest) {
	left := maxCacheBreakpoints - countBreakpoints(r)
	if left > 0 && len(r.Tools) > 0 && r.Tools[len(r.Tools)-1].CacheControl == nil {
		r.Tools[len(r.Tools)-1].CacheControl = ephemeral
		left--
	}
	if left > 0 && len(r.System) > 0 && r.System[0] == '"' {
		var text string
		if s, ok := jsonsse.String(r.System); ok {
			text = s
		}
		if b, err := jsonsse.Encode([]messagesBlock{{Type: blockText, Text: text, CacheControl: ephemeral}}); err == nil {
			r.System = b
			left--
		}
	}
	for i := len(r.Messages) - 1; i >= 0 && left > 0; i-- {
		m := &r.Messages[i]
		if m.Role != roleUser || len(m.Content) == 0 {
			continue
		}
		last := &m.Content[len(m.Content)-1]
		if last.CacheControl == nil {
			last.CacheControl = ephemeral
			left--
		}
		if countUserBreakpoints(r.Messages[i:]) >= 2 {
			break
		}
	}
}

// countUserBreakpoints counts the user messages of msgs that carry a breakpoint.
func countUserBreakpoints(msgs []messagesMessage) int {
	n := 0
	for _, m := range msgs {
		if m.Role != roleUser {
			continue
		}
		for _, b := range m.Content {
			if b.CacheControl != nil {
				n++
				break
			}
		}
	}
	return n
}

// countBreakpoints counts the breakpoints r carries already.
func countBreakpoints(r *messagesRequest) int {
	n := 0
	for _, t := range r.Tools {
		if t.CacheControl != nil {
			n++
		}
	}
	for _, m := range r.Messages {
		for _, b := range m.Content {
			if b.CacheControl != nil {
				n++
			}
		}
	}
	return n
}
