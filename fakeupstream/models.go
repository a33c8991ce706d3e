package fakeupstream

import "encoding/json"

// forModel is the script for a request with this body: Models' entry for the body's model
// when the script has one (a per-model answer under one credential, e.g. a context-length
// 400 for a small model only), else the script itself. The entry is used as it is: its own
// Models and Times are not consulted.
func (s Script) forModel(body []byte) Script {
	if len(s.Models) == 0 {
		return s
	}
	var req struct {
		Model string `json:"model"`
	}
	if json.Unmarshal(body, &req) != nil {
		return s
	}
	if m, ok := s.Models[req.Model]; ok {
		return m
	}
	return s
}
