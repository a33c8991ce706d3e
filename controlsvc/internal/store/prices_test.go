package store

import (
	"context"
	"errors"
	"testing"
)

func TestPricesUpsertListDelete(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := context.Background()

	if got, err := st.ListPrices(ctx); err != nil || len(got) != 0 {
		t.Fatalf("ListPrices on an empty table = %v, %v", got, err)
	}
	in := ModelPrice{Model: "gpt-4o*", InputMicros: 2_000_000, OutputMicros: 8_000_000, CacheReadMicros: 1, CacheWriteMicros: 2, Note: "negotiated"}
	p, created, err := st.PutPrice(ctx, in)
	if err != nil || !created {
		t.Fatalf("PutPrice = %+v, %v, %v; want created", p, created, err)
	}
	if p.Model != in.Model || p.InputMicros != in.InputMicros || p.OutputMicros != in.OutputMicros ||
		p.CacheReadMicros != 1 || p.CacheWriteMicros != 2 || p.Note != "negotiated" || p.CreatedAt.IsZero() {
		t.Fatalf("PutPrice stored %+v", p)
	}
	in.OutputMicros = 9_000_000
	p2, created, err := st.PutPrice(ctx, in)
	if err != nil || created || p2.OutputMicros != 9_000_000 || !p2.CreatedAt.Equal(p.CreatedAt) {
		t.Fatalf("second PutPrice = %+v, created %v, %v; want a replacement", p2, created, err)
	}
	if _, _, err := st.PutPrice(ctx, ModelPrice{Model: "m", InputMicros: -1}); err == nil {
		t.Error("a negative price was stored")
	}
	if _, _, err := st.PutPrice(ctx, ModelPrice{Model: "Upper"}); err == nil {
		t.Error("an upper-case key was stored")
	}
	list, err := st.ListPrices(ctx)
	if err != nil || len(list) != 1 || list[0].OutputMicros != 9_000_000 {
		t.Fatalf("ListPrices = %+v, %v", list, err)
	}
	if err := st.DeletePrice(ctx, "gpt-4o*"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeletePrice(ctx, "gpt-4o*"); !errors.Is(err, ErrPriceNotFound) {
		t.Fatalf("second DeletePrice = %v, want ErrPriceNotFound", err)
	}
}
