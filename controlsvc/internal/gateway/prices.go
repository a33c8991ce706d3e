package gateway

import (
	"sync"

	"github.com/poolgate/poolgate/controlsvc/internal/prices"
	"github.com/poolgate/poolgate/controlsvc/internal/usage"
)

// PriceSource hands out the current effective price table; *prices.Cache implements it.
type PriceSource interface {
	Table() *usage.PriceTable
}

var _ PriceSource = (*prices.Cache)(nil)

// defaultPrices serves the shipped table, for a service built without a price cache.
type defaultPrices struct{}

var defaultTable = sync.OnceValue(func() *usage.PriceTable {
	t, err := prices.Table(prices.Effective(nil))
	if err != nil {
		panic("gateway: shipped price table: " + err.Error()) // the usage tests parse the same file
	}
	return t
})

func (defaultPrices) Table() *usage.PriceTable { return defaultTable() }
