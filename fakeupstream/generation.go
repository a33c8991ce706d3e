package fakeupstream

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"
)

// generation is one fake model answer, rendered in each API's format.
type generation struct {
	id      string // without the API's prefix
	itemID  string
	model   string
	created int64
	text    string
	pieces  []string // the streamed deltas; they join to text
	usage   Usage
}

func newGeneration(req requestFields, sc Script) *generation {
	text := sc.text()
	return &generation{
		id:      randomID(24),
		itemID:  randomID(24),
		model:   req.Model,
		created: time.Now().Unix(),
		text:    text,
		pieces:  textPieces(text),
		usage:   sc.usage(),
	}
}

// textPieces splits text into word-sized deltas the way models stream:
// each piece after the first starts with its space.
func textPieces(text string) []string {
	var pieces []string
	start := 0
	for i := 1; i < len(text); i++ {
		if text[i] == ' ' && text[i-1] != ' ' {
			pieces = append(pieces, text[start:i])
			start = i
		}
	}
	return append(pieces, text[start:])
}

func randomID(nBytes int) string {
	b := make([]byte, nBytes/2)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}

// anthropicInput is input_tokens as Anthropic reports it: exclusive of
// cache reads and writes.
func (u Usage) anthropicInput() int {
	n := u.InputTokens - u.CachedTokens - u.CacheCreationTokens
	if n < 0 {
		return 0
	}
	return n
}

// errorMessage is a plausible provider message for an error status.
func errorMessage(status int) string {
	switch status {
	case 400:
		return "Invalid request (scripted by the fake upstream)."
	case 401:
		return "Incorrect API key provided."
	case 402:
		return "You exceeded your current quota, please check your plan and billing details."
	case 403:
		return "You are not allowed to access this resource."
	case 404:
		return "The model does not exist or you do not have access to it."
	case 429:
		return "Rate limit reached for requests. Please try again later."
	case 529:
		return "Overloaded"
	}
	if status >= 500 {
		return "The server had an error while processing your request."
	}
	if t := http.StatusText(status); t != "" {
		return t
	}
	return "Request failed"
}
