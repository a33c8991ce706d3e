package fakeupstream

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// openAIError is OpenAI's error body.
type openAIError struct {
	Error openAIErrorBody `json:"error"`
}

type openAIErrorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// anthropicError is Anthropic's error body.
type anthropicError struct {
	Type  string             `json:"type"`
	Error anthropicErrorBody `json:"error"`
}

type anthropicErrorBody struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// writeError answers with status and an error object in the API's format.
// Headers already set (scripted ones) are kept.
func writeError(w http.ResponseWriter, a api, status int, message string) {
	var body any
	if a == apiMessages {
		body = anthropicError{Type: "error", Error: anthropicErrorBody{Type: anthropicErrorType(status), Message: message}}
	} else {
		typ, code := openAIErrorType(status)
		e := openAIErrorBody{Message: message, Type: typ}
		if code != "" {
			e.Code = &code
		}
		body = openAIError{Error: e}
	}
	b, _ := json.Marshal(body) // plain structs of strings cannot fail
	h := w.Header()
	setDefaultHeader(h, "Content-Type", "application/json")
	setDefaultHeader(h, "X-Request-Id", "req_"+randomID(12))
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// openAIErrorType follows what api.openai.com sends per status.
func openAIErrorType(status int) (typ, code string) {
	switch {
	case status == 401:
		return "invalid_request_error", "invalid_api_key"
	case status == 402:
		return "insufficient_quota", "insufficient_quota"
	case status == 403:
		return "invalid_request_error", "unsupported_country_region_territory"
	case status == 404:
		return "invalid_request_error", "model_not_found"
	case status == 429:
		return "requests", "rate_limit_exceeded"
	case status >= 500:
		return "server_error", ""
	}
	return "invalid_request_error", ""
}

// anthropicErrorType follows https://docs.anthropic.com/en/api/errors.
func anthropicErrorType(status int) string {
	switch status {
	case 400:
		return "invalid_request_error"
	case 401:
		return "authentication_error"
	case 402:
		return "billing_error"
	case 403:
		return "permission_error"
	case 404:
		return "not_found_error"
	case 413:
		return "request_too_large"
	case 429:
		return "rate_limit_error"
	case 529:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}
