package adminapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/poolgate/poolgate/controlsvc/internal/prices"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
	"github.com/poolgate/poolgate/controlsvc/internal/usage"
)

// Model prices (docs/billing.md, "Prices and the model catalogue"): the shipped defaults
// plus operator overrides, in USD per million tokens. A key is an exact model name or a
// prefix ending in '*'; the exact name, else the longest matching prefix, prices a model.

// maxPriceNoteLen bounds an override's note.
const maxPriceNoteLen = 500

type priceView struct {
	Model      string      `json:"model"`
	Input      json.Number `json:"input"`
	Output     json.Number `json:"output"`
	CacheRead  json.Number `json:"cache_read"`
	CacheWrite json.Number `json:"cache_write"`
	Source     string      `json:"source"` // default | override
	Note       string      `json:"note"`
	UpdatedAt  *time.Time  `json:"updated_at"` // null for defaults
	// Catalogue entries (shipped or imported) only: the 1-hour cache write, the long-context
	// tier, the context window and the maximum output.
	CacheWrite1h    json.Number  `json:"cache_write_1h,omitempty"`
	LongContext     *longContext `json:"long_context,omitempty"`
	MaxInputTokens  int64        `json:"max_input_tokens,omitempty"`
	MaxOutputTokens int64        `json:"max_output_tokens,omitempty"`
}

// longContext is a tier in USD per million tokens, for prompts above AboveTokens.
type longContext struct {
	AboveTokens int64       `json:"above_tokens"`
	Input       json.Number `json:"input"`
	Output      json.Number `json:"output"`
	CacheRead   json.Number `json:"cache_read"`
	CacheWrite  json.Number `json:"cache_write"`
}

func newPriceView(e prices.Entry) priceView {
	v := priceView{
		Model: e.Model, Input: formatMicros(e.Price.Input), Output: formatMicros(e.Price.Output),
		CacheRead: formatMicros(e.Price.CacheRead), CacheWrite: formatMicros(e.Price.CacheWrite),
		Source: e.Source, Note: e.Note,
	}
	if !e.UpdatedAt.IsZero() {
		t := e.UpdatedAt
		v.UpdatedAt = &t
	}
	if e.Spec != nil {
		v.MaxInputTokens, v.MaxOutputTokens = e.Spec.MaxInput, e.Spec.MaxOutput
	}
	if e.Price.CacheWrite1h > 0 {
		v.CacheWrite1h = formatMicros(e.Price.CacheWrite1h)
	}
	if l := e.Price.Long; l.Above > 0 {
		v.LongContext = &longContext{AboveTokens: l.Above, Input: formatMicros(l.Input), Output: formatMicros(l.Output),
			CacheRead: formatMicros(l.CacheRead), CacheWrite: formatMicros(l.CacheWrite)}
	}
	return v
}

// priceInput is the body of PUT /prices/{model}. input and output are required; cache_read
// and cache_write default to the input price, so an omission never makes tokens free.
type priceInput struct {
	Input      json.RawMessage `json:"input"`
	Output     json.RawMessage `json:"output"`
	CacheRead  json.RawMessage `json:"cache_read"`
	CacheWrite json.RawMessage `json:"cache_write"`
	Note       *string         `json:"note"`
}

func (in priceInput) toPrice(model string) (store.ModelPrice, error) {
	p := store.ModelPrice{Model: model}
	if in.Input == nil || in.Output == nil {
		return p, invalid("input and output are required (USD per million tokens)")
	}
	var err error
	if p.InputMicros, err = parseUSD("input", in.Input); err != nil {
		return p, err
	}
	if p.OutputMicros, err = parseUSD("output", in.Output); err != nil {
		return p, err
	}
	p.CacheReadMicros, p.CacheWriteMicros = p.InputMicros, p.InputMicros
	if in.CacheRead != nil {
		if p.CacheReadMicros, err = parseUSD("cache_read", in.CacheRead); err != nil {
			return p, err
		}
	}
	if in.CacheWrite != nil {
		if p.CacheWriteMicros, err = parseUSD("cache_write", in.CacheWrite); err != nil {
			return p, err
		}
	}
	if in.Note != nil {
		if len(*in.Note) > maxPriceNoteLen {
			return p, invalid("note must be at most %d bytes", maxPriceNoteLen)
		}
		p.Note = *in.Note
	}
	return p, nil
}

// pathModel reads and normalises the {model} path variable.
func pathModel(r *http.Request) (string, error) {
	m, err := usage.NormalizePattern(mux.Vars(r)["model"])
	if err != nil {
		return "", invalid("%v", err)
	}
	return m, nil
}

func (a *API) effectivePrices(r *http.Request) ([]prices.Entry, error) {
	overrides, err := a.st.ListPrices(r.Context())
	if err != nil {
		return nil, err
	}
	return prices.Effective(overrides), nil
}

func (a *API) listPrices(w http.ResponseWriter, r *http.Request) {
	entries, err := a.effectivePrices(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	page, next, err := pageByModel(r.URL.Query(), entries)
	if err != nil {
		writeError(w, r, err)
		return
	}
	views := make([]priceView, 0, len(page))
	for _, e := range page {
		views = append(views, newPriceView(e))
	}
	writeJSON(w, http.StatusOK, pageBody[priceView]{Items: views, NextCursor: next})
}

// effectiveTable is the price table billing uses now: the shipped catalogue with the
// admin's overrides.
func (a *API) effectiveTable(r *http.Request) (*usage.PriceTable, error) {
	entries, err := a.effectivePrices(r)
	if err != nil {
		return nil, err
	}
	return prices.Table(entries)
}

// resolvePrice answers which entry prices ?model=, as billing would.
func (a *API) resolvePrice(w http.ResponseWriter, r *http.Request) {
	model := r.URL.Query().Get("model")
	if model == "" {
		writeError(w, r, invalid("query parameter model is required"))
		return
	}
	entries, err := a.effectivePrices(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	table, err := prices.Table(entries)
	if err != nil {
		writeError(w, r, err)
		return
	}
	_, key, ok := table.Lookup(model)
	if !ok {
		writeError(w, r, &requestError{status: http.StatusNotFound, typ: typeNotFound,
			message: "No price configured for model " + model})
		return
	}
	for _, e := range entries {
		if e.Model == key {
			writeJSON(w, http.StatusOK, newPriceView(e))
			return
		}
	}
	writeError(w, r, errors.New("resolved price key missing from the effective table"))
}

func (a *API) putPrice(w http.ResponseWriter, r *http.Request) {
	model, err := pathModel(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in priceInput
	if err := decodeBody(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	p, err := in.toPrice(model)
	if err != nil {
		writeError(w, r, err)
		return
	}
	stored, created, err := a.st.PutPrice(r.Context(), p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	notifyChanged(a, r, a.prices, "model prices")
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, newPriceView(prices.Entry{
		Model: stored.Model, Source: prices.SourceOverride, Note: stored.Note, UpdatedAt: stored.UpdatedAt,
		Price: usage.Price{Input: stored.InputMicros, Output: stored.OutputMicros,
			CacheRead: stored.CacheReadMicros, CacheWrite: stored.CacheWriteMicros},
	}))
}

// deletePrice removes an override; the default of the same key, if any, applies again.
func (a *API) deletePrice(w http.ResponseWriter, r *http.Request) {
	model, err := pathModel(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := a.st.DeletePrice(r.Context(), model); err != nil {
		if errors.Is(err, store.ErrPriceNotFound) {
			err = &requestError{status: http.StatusNotFound, typ: typeNotFound, message: "no price override for " + model}
		}
		writeError(w, r, err)
		return
	}
	notifyChanged(a, r, a.prices, "model prices")
	w.WriteHeader(http.StatusNoContent)
}
