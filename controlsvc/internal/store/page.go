package store

// Page asks for one page of an admin list in keyset order (never OFFSET): the rows whose
// sort key comes after After (the key of the previous page's last row; nil = from the
// start), at most Limit of them. The list functions return one row more when another page
// follows, so the caller knows without a second query.
type Page struct {
	After []int64
	Limit int
}

// Admin list page sizes (docs/design.md, "Admin lists").
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 500
)

// fetch is the LIMIT to query: the page's size, clamped, plus the row that tells whether
// another page follows.
func (p Page) fetch() int {
	n := p.Limit
	if n <= 0 {
		n = DefaultPageLimit
	}
	return min(n, MaxPageLimit) + 1
}

// after is the i-th part of the cursor; 0 (before every id) when absent.
func (p Page) after(i int) int64 {
	if i < len(p.After) {
		return p.After[i]
	}
	return 0
}
