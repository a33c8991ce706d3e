package adminapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/poolgate/poolgate/controlsvc/internal/catalogue"
	"github.com/poolgate/poolgate/controlsvc/internal/prices"
	"github.com/poolgate/poolgate/controlsvc/internal/store"
)

// Catalogue imports and unpriced models (docs/design.md, "Model catalogue admin endpoints").

// maxImportBytes bounds an import: LiteLLM's whole model_prices_and_context_window.json is
// a few MiB.
const maxImportBytes = 16 << 20

// importNote marks the overrides an import wrote.
const importNote = "imported (LiteLLM format)"

// maxSkippedNamed bounds the skipped models an import answer names.
const maxSkippedNamed = 100

// UnpricedReader lists the models without a price asked for in the last day;
// *prices.UnpricedLog implements it.
type UnpricedReader interface {
	Unpriced(ctx context.Context, now time.Time) ([]prices.UnpricedModel, error)
}

var _ UnpricedReader = (*prices.UnpricedLog)(nil)

type importResult struct {
	Imported      int      `json:"imported"`
	Created       int      `json:"created"`
	Skipped       int      `json:"skipped"`
	SkippedModels []string `json:"skipped_models"`
}

// importPrices stores every token-priced entry of a LiteLLM catalogue as an override, all or
// nothing: any malformed entry refuses the whole body (400) and changes nothing.
func (a *API) importPrices(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxImportBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, r, &requestError{status: http.StatusRequestEntityTooLarge, typ: typeInvalidRequest,
			message: fmt.Sprintf("catalogue too large, limit is %d bytes", maxImportBytes)})
		return
	case err != nil:
		writeError(w, r, invalid("reading the catalogue: %v", err))
		return
	}
	entries, skipped, err := catalogue.Parse(body)
	if err != nil {
		writeError(w, r, invalid("%v", err))
		return
	}
	ps := make([]store.ModelPrice, 0, len(entries))
	for _, e := range entries {
		ps = append(ps, store.ModelPrice{Model: e.Model, InputMicros: e.Price.Input, OutputMicros: e.Price.Output,
			CacheReadMicros: e.Price.CacheRead, CacheWriteMicros: e.Price.CacheWrite, Note: importNote, Spec: catalogue.Spec(e)})
	}
	created, err := a.st.ImportPrices(r.Context(), ps)
	if err != nil {
		writeError(w, r, err)
		return
	}
	notifyChanged(a, r, a.prices, "model prices")
	res := importResult{Imported: len(ps), Created: created, Skipped: len(skipped), SkippedModels: skipped}
	if len(res.SkippedModels) > maxSkippedNamed {
		res.SkippedModels = res.SkippedModels[:maxSkippedNamed]
	}
	if res.SkippedModels == nil {
		res.SkippedModels = []string{}
	}
	writeJSON(w, http.StatusOK, res)
}

// listUnpriced answers the models without a price asked for in the last 24 hours, most
// asked first, leaving out those priced since.
func (a *API) listUnpriced(w http.ResponseWriter, r *http.Request) {
	if a.unpriced == nil {
		writeJSON(w, http.StatusOK, map[string]any{"items": []prices.UnpricedModel{}})
		return
	}
	seen, err := a.unpriced.Unpriced(r.Context(), time.Now())
	if err != nil {
		writeError(w, r, fmt.Errorf("reading unpriced models: %w", err))
		return
	}
	table, err := a.effectiveTable(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	items := make([]prices.UnpricedModel, 0, len(seen))
	for _, m := range seen {
		if _, _, ok := table.Lookup(m.Model); !ok {
			items = append(items, m)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}
