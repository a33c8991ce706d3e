package plugin

import (
	"context"
	"net/http"
	"strconv"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// GET /v1/models (docs/design.md, "Paths"): the plugin authenticates nothing itself.
// controlsvc's POST /internal/v1/models (docs/design.md) answers the client's body for the
// key, in the shape asked for, or a refusal that is copied to the client as admit's are.

const modelsPath = "/internal/v1/models"

// Shapes of the models list, as named in the call.
const (
	modelsShapeOpenAI    = "openai"
	modelsShapeAnthropic = "anthropic"
)

type modelsRequest struct {
	APIKey string `json:"api_key"`
	Shape  string `json:"shape"`
}

func serveModels(p *Poolgate, rw http.ResponseWriter, req *http.Request) {
	requestID := newRequestID()
	shape, listShape := shapeOpenAI, modelsShapeOpenAI
	if anthropicClient(req.Header) {
		shape, listShape = shapeAnthropic, modelsShapeAnthropic
	}
	key := extractAPIKey(req.Header)
	if !wellFormedKey(key) {
		// The cheap check of every route: a key that cannot be one costs no control call.
		writeShapedError(rw, shape, requestID, newClientError(http.StatusUnauthorized, typeAuthentication, msgInvalidAPIKey))
		return
	}
	body, err := jsonsse.Encode(modelsRequest{APIKey: key, Shape: listShape})
	if err != nil {
		writeShapedError(rw, shape, requestID, newClientError(http.StatusInternalServerError, typeAPI, msgInternal))
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), p.admitTimeout)
	defer cancel()
	status, header, data, err := post(p.control.client, ctx, modelsPath, body)
	switch {
	case err == nil && status == http.StatusOK:
		h := rw.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(data)))
		h.Set(headerRequestID, requestID)
		rw.WriteHeader(http.StatusOK)
		_, _ = rw.Write(data)
	case err == nil && header.Get(headerReject) != "":
		ct := header.Get("Content-Type")
		if ct == "" {
			ct = "application/json"
		}
		writeRejection(rw, requestID, &rejection{status: status, reason: header.Get(headerReject), body: data,
			contentType: ct, retryAfter: header.Get("Retry-After")})
	default:
		writeShapedError(rw, shape, requestID, newClientError(http.StatusServiceUnavailable, typeAPI, msgUnavailable))
	}
}
