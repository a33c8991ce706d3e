package store

import "encoding/json"

// usageColumns holds a batch as one slice per column, the shape unnest takes: the records'
// columns ($1–$29, $43, $47, $51 and $52 of sqlWriteUsageBatch) and their attempts' ($30–$42, $44 and
// $48–$50).
type usageColumns struct {
	requestID, grantID, path, model, upstreamModel, errorClass []string
	usageSource, routing, servedModel, warnings                []string
	userID, apiKeyID, groupID, accountID                       []int64
	input, output, cacheRead, cacheCreation, reasoning         []int64
	cost, inputCost, outputCost, cacheReadCost, cacheWriteCost []int64
	rate, admission, upstream, firstToken, duration            []int64
	stream, priced                                             []bool
	status, attempts                                           []int32
	attempt                                                    attemptColumns
}

type attemptColumns struct {
	requestID, errorClass, usageSource                 []string
	number, status                                     []int32
	accountID, input, output, cacheRead, cacheCreation []int64
	reasoning, cost, latency, firstToken               []int64
	breakerOpen, hedgeLost, retriedSame                []bool
}

func newUsageColumns(n int) *usageColumns {
	s := func() []string { return make([]string, 0, n) }
	i := func() []int64 { return make([]int64, 0, n) }
	return &usageColumns{
		requestID: s(), grantID: s(), path: s(), model: s(), upstreamModel: s(), errorClass: s(),
		usageSource: s(), routing: s(), servedModel: s(), warnings: s(), userID: i(), apiKeyID: i(), groupID: i(), accountID: i(),
		input: i(), output: i(), cacheRead: i(), cacheCreation: i(), reasoning: i(),
		cost: i(), inputCost: i(), outputCost: i(), cacheReadCost: i(), cacheWriteCost: i(),
		rate: i(), admission: i(), upstream: i(), firstToken: i(), duration: i(),
		stream: make([]bool, 0, n), priced: make([]bool, 0, n),
		status: make([]int32, 0, n), attempts: make([]int32, 0, n),
		// Empty, not nil, even for a batch without attempts: pgx sends a nil slice as NULL.
		attempt: attemptColumns{
			requestID: s(), errorClass: s(), usageSource: s(), number: make([]int32, 0, n), status: make([]int32, 0, n),
			accountID: i(), input: i(), output: i(), cacheRead: i(), cacheCreation: i(),
			reasoning: i(), cost: i(), latency: i(), firstToken: i(),
			breakerOpen: make([]bool, 0, n), hedgeLost: make([]bool, 0, n), retriedSame: make([]bool, 0, n),
		},
	}
}

func (c *usageColumns) add(u *UsageWrite) {
	c.requestID = append(c.requestID, u.RequestID)
	c.grantID = append(c.grantID, u.GrantID)
	c.userID = append(c.userID, u.UserID)
	c.apiKeyID = append(c.apiKeyID, u.APIKeyID)
	c.groupID = append(c.groupID, u.GroupID)
	c.accountID = append(c.accountID, u.AccountID)
	c.path = append(c.path, u.Path)
	c.model = append(c.model, u.Model)
	c.upstreamModel = append(c.upstreamModel, u.UpstreamModel)
	c.stream = append(c.stream, u.Stream)
	c.status = append(c.status, int32(u.Status))
	c.errorClass = append(c.errorClass, u.ErrorClass)
	c.input = append(c.input, u.InputTokens)
	c.output = append(c.output, u.OutputTokens)
	c.cacheRead = append(c.cacheRead, u.CacheReadTokens)
	c.cacheCreation = append(c.cacheCreation, u.CacheCreationTokens)
	c.reasoning = append(c.reasoning, u.ReasoningTokens)
	c.priced = append(c.priced, u.Priced)
	c.cost = append(c.cost, u.CostMicros)
	c.inputCost = append(c.inputCost, u.InputCostMicros)
	c.outputCost = append(c.outputCost, u.OutputCostMicros)
	c.cacheReadCost = append(c.cacheReadCost, u.CacheReadCostMicros)
	c.cacheWriteCost = append(c.cacheWriteCost, u.CacheWriteCostMicros)
	c.rate = append(c.rate, u.RateMicros)
	c.admission = append(c.admission, u.AdmissionMs)
	c.upstream = append(c.upstream, u.UpstreamMs)
	c.firstToken = append(c.firstToken, u.FirstTokenMs)
	c.duration = append(c.duration, u.DurationMs)
	c.attempts = append(c.attempts, int32(len(u.Attempts)))
	c.usageSource = append(c.usageSource, sourceOr(u.UsageSource))
	c.routing = append(c.routing, string(u.Routing)) // "" is stored as NULL
	c.servedModel = append(c.servedModel, u.ServedModel)
	c.warnings = append(c.warnings, warningsJSON(u.Warnings))
	for i := range u.Attempts {
		c.attempt.add(u.RequestID, int32(i+1), &u.Attempts[i])
	}
}

func (c *attemptColumns) add(requestID string, number int32, a *AttemptWrite) {
	c.requestID = append(c.requestID, requestID)
	c.number = append(c.number, number)
	c.accountID = append(c.accountID, a.AccountID)
	c.status = append(c.status, int32(a.Status))
	c.errorClass = append(c.errorClass, a.ErrorClass)
	c.input = append(c.input, a.InputTokens)
	c.output = append(c.output, a.OutputTokens)
	c.cacheRead = append(c.cacheRead, a.CacheReadTokens)
	c.cacheCreation = append(c.cacheCreation, a.CacheCreationTokens)
	c.reasoning = append(c.reasoning, a.ReasoningTokens)
	c.cost = append(c.cost, a.CostMicros)
	c.latency = append(c.latency, a.LatencyMs)
	c.firstToken = append(c.firstToken, a.FirstTokenMs)
	c.usageSource = append(c.usageSource, sourceOr(a.UsageSource))
	c.breakerOpen = append(c.breakerOpen, a.BreakerOpen)
	c.hedgeLost = append(c.hedgeLost, a.HedgeLost)
	c.retriedSame = append(c.retriedSame, a.RetriedSameAccount)
}

// args are the parameters of sqlWriteUsageBatch, in its order.
func (c *usageColumns) args() []any {
	a := &c.attempt
	return []any{c.requestID, c.grantID, c.userID, c.apiKeyID, c.groupID, c.accountID,
		c.path, c.model, c.upstreamModel, c.stream, c.status, c.errorClass,
		c.input, c.output, c.cacheRead, c.cacheCreation, c.reasoning,
		c.priced, c.cost, c.inputCost, c.outputCost, c.cacheReadCost,
		c.cacheWriteCost, c.rate,
		c.admission, c.upstream, c.firstToken, c.duration, c.attempts,
		a.requestID, a.number, a.accountID, a.status, a.errorClass,
		a.input, a.output, a.cacheRead, a.cacheCreation, a.reasoning,
		a.cost, a.latency, a.firstToken,
		c.usageSource, a.usageSource}
}

// reasonArgs are the parameters $47–$52 of sqlWriteUsageBatch: the records' routing, the
// attempts' flags of why they ended, and the records' served models and warnings.
func (c *usageColumns) reasonArgs() []any {
	a := &c.attempt
	return []any{c.routing, a.breakerOpen, a.hedgeLost, a.retriedSame, c.servedModel, c.warnings}
}

// warningsJSON is a record's warnings as sqlWriteUsageBatch takes them: a JSON array, ""
// for none (stored as NULL).
func warningsJSON(w []string) string {
	if len(w) == 0 {
		return ""
	}
	b, _ := json.Marshal(w) // a []string always marshals
	return string(b)
}

// heldArgs are the parameters $53–$57 of sqlWriteUsageBatch: the Redis holds of the
// records (request id, holder user, key, group) and the request ids granted without one.
func heldArgs(byID map[string]*UsageWrite) []any {
	// never nil: a NULL array would make "= ANY" unknown, and every record granted
	ids, granted := []string{}, []string{}
	users, keys, groups := []int64{}, []int64{}, []int64{}
	for id, u := range byID {
		if u.Held != nil {
			ids = append(ids, id)
			users, keys, groups = append(users, u.Held.UserID), append(keys, u.Held.KeyID), append(groups, u.Held.GroupID)
		}
		if u.Granted {
			granted = append(granted, id)
		}
	}
	return []any{ids, users, keys, groups, granted}
}
