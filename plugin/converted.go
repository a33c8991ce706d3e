package plugin

// Responses requests answered by an Anthropic account (docs/design.md, "Conversion
// contract"). A grant with convert "responses_to_messages" sends each attempt the Messages
// body converted from the client's fields (plugin/convert, request.go) to
// <base_url>/v1/messages, always streamed, and converts the Anthropic stream back
// (plugin/convert, stream.go). The converter's Started() is the commit point: before it, an
// upstream error event, a cut or a stream without message_stop fails the attempt over like
// any failed attempt; from it on, the converted stream ends in response.completed,
// response.incomplete or response.failed, never in another protocol's error frame. A client
// that did not ask to stream gets the final response object, or an error, at the end.

import (
	"bytes"
	"context"
	"net/http"

	"github.com/poolgate/poolgate/plugin/convert"
	"github.com/poolgate/poolgate/plugin/jsonsse"
	"github.com/poolgate/poolgate/plugin/wire"
)

// convertResponsesToMessages is the grant's convert value for this path.
const convertResponsesToMessages = "responses_to_messages"

const (
	// defaultAnthropicVersion is sent when the grant's headers name none.
	defaultAnthropicVersion = "2023-06-01"
	// classInvalidRequest: the body could not be converted (a 400 to the client).
	classInvalidRequest = "invalid_request"

	msgAccountsExhausted = "All available accounts exhausted"
)

// converting reports whether the current grant serves the request by conversion.
func converting(x *exchange) bool {
	return x.grant != nil && x.grant.Convert == convertResponsesToMessages
}

// errorShape is the shape of the exchange's error bodies (errors.go).
func errorShape(x *exchange) int {
	switch {
	case x.path == pathMessages:
		return shapeAnthropic
	case converting(x):
		return shapeCode
	}
	return shapeOpenAI
}

// reportUsageFormat tells controlsvc how to read the report's usage: a converted request
// reports the Anthropic usage it received.
func reportUsageFormat(x *exchange) string {
	if converting(x) {
		return usageAnthropic
	}
	return usageFormatFor(x.path)
}

// convertedBody returns the Messages body for g, converted from the fields validation
// decoded. It is cached per upstream model and output cap: failover attempts usually land
// on accounts that agree on both.
func convertedBody(x *exchange, g *grant) ([]byte, error) {
	model := g.UpstreamModel
	if model == "" {
		model = x.info.model
	}
	limit := g.MaxOutputTokens
	if limit < 0 {
		limit = 0
	}
	key := sentKey(model, limit)
	if x.sent != nil && x.sentFor == key {
		return x.sent, nil
	}
	fields := &x.info.fields
	if x.path == pathResponsesCompact {
		f := compactFields(fields)
		fields = &f
	}
	b, tools, err := convert.Request(convertFields(fields), model, limit, true)
	if err != nil {
		return nil, err
	}
	x.sent, x.sentFor, x.convTools = b, key, tools
	return b, nil
}

// convertFields hands the conversion the fields it reads of those validation decoded.
func convertFields(f *requestFields) *convert.Fields {
	return &convert.Fields{
		Model: f.Model, Input: f.Input, Instructions: f.Instructions, MaxOutputTokens: f.MaxOutputTokens,
		Temperature: f.Temperature, TopP: f.TopP, Tools: f.Tools, ToolChoice: f.ToolChoice,
		ParallelToolCalls: f.ParallelToolCalls, Reasoning: f.Reasoning, Text: f.Text,
	}
}

// prepareConverted converts the body for the current grant; a body that cannot be
// converted is answered with a 400 naming the problem, and false.
func prepareConverted(x *exchange) bool {
	if _, err := convertedBody(x, x.grant); err != nil {
		x.errorClass = classInvalidRequest
		writeError(x, newClientError(http.StatusBadRequest, typeInvalidRequest, err.Error()))
		return false
	}
	return true
}

// buildConvertedRequest makes one attempt's request to the Anthropic account: the grant's
// headers (x-api-key, anthropic-version, the account's fixed headers) and of the client's
// only the User-Agent by the group's policy: its other headers belong to another API.
func buildConvertedRequest(ctx context.Context, client *http.Request, g *grant, body []byte) (*http.Request, error) {
	out, err := http.NewRequestWithContext(ctx, http.MethodPost, upstreamURL(g.BaseURL, pathMessages, ""), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	out.Header.Set("Content-Type", "application/json")
	out.Header.Set("Accept", "text/event-stream")
	setUserAgent(out.Header, client.Header, g)
	applyGrantHeaders(out.Header, g)
	if out.Header.Get("Anthropic-Version") == "" {
		out.Header.Set("Anthropic-Version", defaultAnthropicVersion)
	}
	return out, nil
}

// convertedExhausted is the answer when no account is left on a converted request: the last
// upstream status (502 when there was none) with the upstream's error class as the code: the
// type of its error body, else Anthropic's type for the status (overloaded_error for 529,
// api_error for a 500) — not server_error, so a client can tell overload from a fault.
func convertedExhausted(last *failedAttempt) *clientError {
	status := last.Status
	if status < 400 || status > 599 {
		status = http.StatusBadGateway
	}
	typ, _ := jsonsse.ErrorFields(last.Body, wire.AnthropicErrorType(status, ""), "")
	e := newClientError(status, typ, msgAccountsExhausted)
	if status == http.StatusTooManyRequests {
		e.retryAfter = safeRetryAfter(last.RetryAfter)
	}
	return e
}

// convertedUpstreamError answers an upstream error status that is not failed over (e.g. a
// 400 from Anthropic) in the converted path's shape, with Anthropic's type as the code.
func convertedUpstreamError(x *exchange, status int, head []byte) {
	x.errorClass = classUpstreamStatus
	typ, msg := jsonsse.ErrorFields(head, typeUpstream, msgUpstreamFailed)
	writeError(x, newClientError(status, typ, msg))
}

// anthropicTypeStatus is the HTTP status Anthropic gives an error type
// (https://docs.anthropic.com/en/api/errors); an error event in a stream has only the type.
func anthropicTypeStatus(typ string) int {
	switch typ {
	case typeInvalidRequest:
		return http.StatusBadRequest
	case typeAuthentication:
		return http.StatusUnauthorized
	case "billing_error":
		return http.StatusPaymentRequired
	case "permission_error":
		return http.StatusForbidden
	case "not_found_error":
		return http.StatusNotFound
	case "request_too_large":
		return http.StatusRequestEntityTooLarge
	case typeRateLimit:
		return http.StatusTooManyRequests
	case "timeout_error":
		return http.StatusGatewayTimeout
	case typeOverloaded:
		return statusOverloaded
	}
	return http.StatusInternalServerError
}
