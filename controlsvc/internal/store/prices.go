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
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// ErrPriceNotFound means no override exists for the key.
var ErrPriceNotFound = errors.New("price override not found")

const (
	priceColumns = `model, input_micros, output_micros, cache_read_micros, cache_write_micros, note, created_at, updated_at`

	sqlListPrices = `SELECT ` + priceColumns + ` FROM model_prices ORDER BY model`

	sqlUpsertPrice = `
INSERT INTO model_prices (model, input_micros, output_micros, cache_read_micros, cache_write_micros, note)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (model) DO UPDATE SET input_micros = EXCLUDED.input_micros,
    output_micros = EXCLUDED.output_micros, cache_read_micros = EXCLUDED.cache_read_micros,
    cache_write_micros = EXCLUDED.cache_write_micros, note = EXCLUDED.note, updated_at = now()
RETURNING ` + priceColumns + `, (xmax = 0)`

	sqlDeletePrice = `DELETE FROM model_prices WHERE model = $1`
)

func scanPrice(row pgx.Row, extra ...any) (ModelPrice, error) {
	var p ModelPrice
	dst := append([]any{&p.Model, &p.InputMicros, &p.OutputMicros, &p.CacheReadMicros,
		&p.CacheWriteMicros, &p.Note, &p.CreatedAt, &p.UpdatedAt}, extra...)
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
		p.CacheReadMicros, p.CacheWriteMicros, p.Note), &created)
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
