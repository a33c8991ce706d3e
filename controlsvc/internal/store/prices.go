package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ModelPrice is one operator override of model_prices: USD micros per million tokens.
type ModelPrice struct {
	Model            string // exact name or prefix ending in '*', lower case
	InputMicros      int64
	OutputMicros     int64
	CacheReadMicros  int64
	CacheWriteMicros int64
	Note             string
	// Spec is the LiteLLM entry of an imported override (package catalogue reads it); nil
	// for one written with PutPrice.
	Spec      []byte
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ErrPriceNotFound means no override exists for the key.
var ErrPriceNotFound = errors.New("price override not found")

const (
	priceColumns = `model, input_micros, output_micros, cache_read_micros, cache_write_micros, note, spec, created_at, updated_at`

	sqlListPrices = `SELECT ` + priceColumns + ` FROM model_prices ORDER BY model`

	sqlUpsertPrice = `
INSERT INTO model_prices (model, input_micros, output_micros, cache_read_micros, cache_write_micros, note, spec)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (model) DO UPDATE SET input_micros = EXCLUDED.input_micros,
    output_micros = EXCLUDED.output_micros, cache_read_micros = EXCLUDED.cache_read_micros,
    cache_write_micros = EXCLUDED.cache_write_micros, note = EXCLUDED.note, spec = EXCLUDED.spec, updated_at = now()
RETURNING ` + priceColumns + `, (xmax = 0)`

	sqlDeletePrice = `DELETE FROM model_prices WHERE model = $1`
)

func scanPrice(row pgx.Row, extra ...any) (ModelPrice, error) {
	var p ModelPrice
	dst := append([]any{&p.Model, &p.InputMicros, &p.OutputMicros, &p.CacheReadMicros,
		&p.CacheWriteMicros, &p.Note, &p.Spec, &p.CreatedAt, &p.UpdatedAt}, extra...)
	err := row.Scan(dst...)
	return p, err
}

// ListPrices returns every override, by key.
func (s *Store) ListPrices(ctx context.Context) ([]ModelPrice, error) {
	rows, err := s.Pool.Query(ctx, sqlListPrices)
	if err != nil {
		return nil, fmt.Errorf("listing prices: %w", err)
	}
	defer rows.Close()
	var out []ModelPrice
	for rows.Next() {
		p, err := scanPrice(rows)
		if err != nil {
			return nil, fmt.Errorf("scanning price: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing prices: %w", err)
	}
	return out, nil
}

// PutPrice creates or replaces the override of p.Model; created says which. The caller
// normalises and validates the key (usage.NormalizePattern).
func (s *Store) PutPrice(ctx context.Context, p ModelPrice) (ModelPrice, bool, error) {
	var created bool
	out, err := scanPrice(s.Pool.QueryRow(ctx, sqlUpsertPrice, p.Model, p.InputMicros, p.OutputMicros,
		p.CacheReadMicros, p.CacheWriteMicros, p.Note, p.Spec), &created)
	if err != nil {
		return ModelPrice{}, false, fmt.Errorf("storing price of %q: %w", p.Model, err)
	}
	return out, created, nil
}

// DeletePrice removes the override of model; ErrPriceNotFound if there is none.
func (s *Store) DeletePrice(ctx context.Context, model string) error {
	tag, err := s.Pool.Exec(ctx, sqlDeletePrice, model)
	if err != nil {
		return fmt.Errorf("deleting price of %q: %w", model, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrPriceNotFound
	}
	return nil
}

// ImportPrices creates or replaces the overrides of every price in one transaction: all of
// them or, on any error, none. It returns how many were new.
func (s *Store) ImportPrices(ctx context.Context, ps []ModelPrice) (int, error) {
	created := 0
	err := s.WithTx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, p := range ps {
			b.Queue(sqlUpsertPrice, p.Model, p.InputMicros, p.OutputMicros, p.CacheReadMicros,
				p.CacheWriteMicros, p.Note, p.Spec).QueryRow(func(row pgx.Row) error {
				var isNew bool
				if _, err := scanPrice(row, &isNew); err != nil {
					return fmt.Errorf("storing price of %q: %w", p.Model, err)
				}
				if isNew {
					created++
				}
				return nil
			})
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return 0, fmt.Errorf("importing %d prices: %w", len(ps), err)
	}
	return created, nil
}
