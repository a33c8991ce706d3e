package plugin

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/poolgate/poolgate/plugin/jsonsse"
)

// GET /v1/models and GET /v1/models/{id} (docs/design.md, "Paths"): the plugin
// authenticates nothing itself.
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
	ID     string `json:"id,omitempty"` // GET /v1/models/{id}
}

// maxModelID bounds the id of GET /v1/models/{id}: longer is no model's.
const maxModelID = 256

// modelID is the id of GET /v1/models/{id} (path normalised), ok false when the path names
// none: empty, too long, or more than one segment.
func modelID(path string) (string, bool) {
	if !strings.HasPrefix(path, pathModels+"/") {
		return "", false
	}
	id := path[len(pathModels)+1:]
	if id == "" || len(id) > maxModelID || strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}

// serveModels answers GET /v1/models, or GET /v1/models/{id} when id is not "".
func serveModels(p *Poolgate, rw http.ResponseWriter, req *http.Request, id string) {
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
	body, err := jsonsse.Encode(modelsRequest{APIKey: key, Shape: listShape, ID: id})
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
