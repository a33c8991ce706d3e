// Package luapipe queues Lua script calls on a caller's pipeline, so that several packages
// share one Redis round trip (docs/design.md, "The hot path: one request, hop by hop"), and
// re-sends after it only the calls Redis refused with NOSCRIPT. EVALSHA cannot fall back to
// EVAL inside a pipeline: after a Redis restart or SCRIPT FLUSH every script call of the
// pipeline answers NOSCRIPT, while its other commands ran. Re-running the whole pipeline
// would run those twice; re-sending only the refused calls runs each command once, since
// Redis ran none of them.
package luapipe

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Call is one script call queued on a pipeline.
type Call struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
}

// Queue queues script on p as EVALSHA (nothing is sent until the caller runs p).
func Queue(ctx context.Context, p redis.Pipeliner, script *redis.Script, keys []string, args ...any) *Call {
	return &Call{script: script, keys: keys, args: args, cmd: script.EvalSha(ctx, p, keys, args...)}
}

// Cmd is the call's reply: the pipeline's, or the re-sent call's after Resend.
func (c *Call) Cmd() *redis.Cmd { return c.cmd }

// NoScript reports whether err is Redis's answer to an EVALSHA of a script it does not
// hold.
func NoScript(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}

// Resend re-sends, in one pipeline, the calls whose reply is NOSCRIPT, as EVAL (which sends
// the script's body and caches it again), and replaces their replies. Calls that ran, or
// failed otherwise, are not sent again. The error is only the re-sent pipeline's own
// failure; each call's outcome is in its Cmd.
func Resend(ctx context.Context, rdb redis.Cmdable, calls []*Call) error {
	var again []*Call
	for _, c := range calls {
		if c != nil && NoScript(c.cmd.Err()) {
			again = append(again, c)
		}
	}
	if len(again) == 0 {
		return nil
	}
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, c := range again {
			c.cmd = c.script.Eval(ctx, p, c.keys, c.args...)
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return fmt.Errorf("re-sending %d script calls after NOSCRIPT: %w", len(again), err)
	}
	return nil
}
