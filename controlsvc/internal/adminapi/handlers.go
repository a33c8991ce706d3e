package adminapi

import (
	"context"
	"net/http"
)

// The shapes most admin resources share: create, list, get, patch and delete by {id}.
// Handlers with more to do (query filters, two path ids, a one-time secret in the answer)
// are written out and use writeView or writePage for their last step.
//
// A view converts a stored object into its JSON body. Most conversions cannot fail; they
// are passed through infallible.

// infallible adapts a conversion that cannot fail to the view shape of the helpers.
func infallible[T, V any](view func(T) V) func(T) (V, error) {
	return func(v T) (V, error) { return view(v), nil }
}

// serveCreate answers POST: the body decoded into I, turned by build into what create
// stores, then then-hooks (e.g. telling caches) and 201 with the stored object's view.
func serveCreate[I, N, T, V any](w http.ResponseWriter, r *http.Request, build func(*I) (N, error),
	create func(context.Context, N) (T, error), view func(T) (V, error), then ...func()) {
	var in I
	if err := decodeBody(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	n, err := build(&in)
	if err != nil {
		writeError(w, r, err)
		return
	}
	created, err := create(r.Context(), n)
	if err != nil {
		writeError(w, r, err)
		return
	}
	runHooks(then)
	writeView(w, r, http.StatusCreated, created, view)
}

// serveByID answers a request on /…/{id} that one store call answers with the object:
// GET, or an action such as cancelling a subscription.
func serveByID[T, V any](w http.ResponseWriter, r *http.Request, get func(context.Context, int64) (T, error),
	view func(T) (V, error)) {
	id, err := pathID(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	v, err := get(r.Context(), id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeView(w, r, http.StatusOK, v, view)
}

// servePatch answers PATCH /…/{id}: the body decoded into I, validated by patch into what
// update applies, then then-hooks and 200 with the updated object's view.
func servePatch[I, P, T, V any](w http.ResponseWriter, r *http.Request, patch func(*I) (P, error),
	update func(context.Context, int64, P) (T, error), view func(T) (V, error), then ...func()) {
	id, err := pathID(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var in I
	if err := decodeBody(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	p, err := patch(&in)
	if err != nil {
		writeError(w, r, err)
		return
	}
	updated, err := update(r.Context(), id, p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	runHooks(then)
	writeView(w, r, http.StatusOK, updated, view)
}

// serveDelete answers DELETE /…/{id} with 204 after then-hooks.
func serveDelete(w http.ResponseWriter, r *http.Request, del func(context.Context, int64) error, then ...func()) {
	id, err := pathID(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := del(r.Context(), id); err != nil {
		writeError(w, r, err)
		return
	}
	runHooks(then)
	w.WriteHeader(http.StatusNoContent)
}

// runHooks runs what must follow a stored write, before the answer.
func runHooks(hooks []func()) {
	for _, h := range hooks {
		h()
	}
}

// writeView renders one object through a conversion that can fail.
func writeView[T, V any](w http.ResponseWriter, r *http.Request, status int, v T, view func(T) (V, error)) {
	out, err := view(v)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, status, out)
}
