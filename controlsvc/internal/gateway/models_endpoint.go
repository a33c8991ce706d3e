package gateway

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/gateway/admission"
)

// POST /internal/v1/models (docs/design.md, "POST /internal/v1/models"): the
// client body of GET /v1/models for a key, the models its group serves (servableModels), in
// OpenAI's list shape or Anthropic's, or of GET /v1/models/{id}, one of them. The plugin
// serves both from it as it is.

// Shapes of the models list.
const (
	shapeOpenAI    = "openai"
	shapeAnthropic = "anthropic"
)

// maxModelsBody bounds the call's body: a key and a shape.
const maxModelsBody = 64 << 10

// modelCreated is the creation time every listed model shows: the gateway does not know
// when a model was released, and a fixed value keeps the list the same from call to call.
var modelCreated = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

type modelsRequest struct {
	APIKey string `json:"api_key"`
	Shape  string `json:"shape"`
	// ID asks for one model (GET /v1/models/{id}): its object, or 404 model_not_found.
	ID string `json:"id,omitempty"`
}

type openAIModel struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

type openAIModelList struct {
	Object string        `json:"object"`
	Data   []openAIModel `json:"data"`
}

type anthropicModel struct {
	Type        string `json:"type"`
	ID          string `json:"id"`
	DisplayName string `json:"display_name"`
	CreatedAt   string `json:"created_at"`
}

type anthropicModelList struct {
	Data    []anthropicModel `json:"data"`
	HasMore bool             `json:"has_more"`
	FirstID *string          `json:"first_id"`
	LastID  *string          `json:"last_id"`
}

// refusalPath is the client path whose error envelope a refusal in shape takes (rejectBody).
func refusalPath(shape string) string {
	if shape == shapeAnthropic {
		return admission.AnthropicPath
	}
	return "/v1/models"
}

func (s *Service) handleModels(w http.ResponseWriter, r *http.Request) {
	var req modelsRequest
	if err := decodeBody(w, r, maxModelsBody, &req); err != nil {
		if errors.Is(err, errBodyTooLarge) {
			writeAPIError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "Request body too large")
			return
		}
		writeAPIError(w, http.StatusBadRequest, "invalid_request_error", "Invalid JSON body")
		return
	}
	if req.Shape == "" {
		req.Shape = shapeOpenAI
	}
	if req.Shape != shapeOpenAI && req.Shape != shapeAnthropic {
		writeReject(w, refusalPath(shapeOpenAI), "", admission.RejectInvalid("Invalid shape"))
		return
	}
	// The lookups are cache fills at worst, each bounded by loadTimeout; so is the call.
	ctx, cancel := context.WithTimeout(r.Context(), loadTimeout)
	defer cancel()
	models, groupID, ok, err := s.adm.ServableModels(ctx, req.APIKey)
	switch {
	case err != nil && !ok:
		writeInternalError(w, s.log, "listing models", err)
		return
	case !ok:
		writeReject(w, refusalPath(req.Shape), "", admission.RejectAuth)
		return
	case err != nil:
		writeInternalError(w, s.log, "listing models", err, "group_id", groupID)
		return
	}
	if req.ID == "" {
		writeJSON(w, http.StatusOK, modelsBody(req.Shape, models))
		return
	}
	if !slices.Contains(models, req.ID) {
		writeReject(w, refusalPath(req.Shape), "", admission.RejectNoSuchModel(req.ID, req.Shape == shapeAnthropic))
		return
	}
	writeJSON(w, http.StatusOK, modelObject(req.Shape, req.ID))
}

// modelObject is the client body of one model in shape (GET /v1/models/{id}), as the list
// shows it.
func modelObject(shape, id string) any {
	if shape == shapeAnthropic {
		return anthropicModelOf(id)
	}
	return openAIModelOf(id)
}

// modelsBody is the client body of the list in shape.
func modelsBody(shape string, models []string) any {
	if shape == shapeAnthropic {
		out := anthropicModelList{Data: make([]anthropicModel, 0, len(models))}
		for _, m := range models {
			out.Data = append(out.Data, anthropicModelOf(m))
		}
		if len(models) > 0 {
			first, last := models[0], models[len(models)-1]
			out.FirstID, out.LastID = &first, &last
		}
		return out
	}
	out := openAIModelList{Object: "list", Data: make([]openAIModel, 0, len(models))}
	for _, m := range models {
		out.Data = append(out.Data, openAIModelOf(m))
	}
	return out
}

func openAIModelOf(id string) openAIModel {
	return openAIModel{ID: id, Object: "model", Created: modelCreated.Unix(), OwnedBy: "poolgate"}
}

func anthropicModelOf(id string) anthropicModel {
	return anthropicModel{Type: "model", ID: id, DisplayName: id, CreatedAt: modelCreated.Format(time.RFC3339)}
}
