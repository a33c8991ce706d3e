package adminapi

import (
	"encoding/json"

	"github.com/poolgate/poolgate/controlsvc/internal/money"
)

// Money and rates in the admin API are JSON numbers with at most six decimals, converted
// exactly to integer micros (package money).

const microsPerUnit = money.PerUnit

// parseMicros converts a JSON number literal to micros. Money fields are decoded as
// json.RawMessage, so anything but a number literal (a string, a boolean) is refused here.
func parseMicros(raw []byte) (int64, error) { return money.Parse(string(raw)) }

// formatMicros renders micros as the shortest exact decimal: 12500000 → 12.5, 0 → 0.
func formatMicros(v int64) json.Number { return money.Format(v) }

// decimalTextToMicros reads PostgreSQL NUMERIC text such as "1.500000".
func decimalTextToMicros(s string) (int64, error) { return money.Parse(s) }
