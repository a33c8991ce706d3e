package luapipe

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/poolgate/poolgate/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var incrScript = redis.NewScript(`return redis.call('INCR', KEYS[1])`)

// TestResendRunsEachCommandOnce: after SCRIPT FLUSH a pipeline's script calls answer
// NOSCRIPT while its other commands run; Resend runs the refused calls once more and
// nothing else, so every command of the pipeline ran exactly once.
func TestResendRunsEachCommandOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flush bool
	}{
		{name: "scripts cached", flush: false},
		{name: "scripts flushed", flush: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			rdb := testenv.RedisClient(t, testenv.RedisURL(t))
			plain, scripted := "luapipe:"+tc.name+":plain", "luapipe:"+tc.name+":scripted"
			rdb.Del(ctx, plain, scripted)
			if err := incrScript.Load(ctx, rdb).Err(); err != nil {
				t.Fatalf("SCRIPT LOAD: %v", err)
			}
			if tc.flush {
				if err := rdb.ScriptFlush(ctx).Err(); err != nil {
					t.Fatalf("SCRIPT FLUSH: %v", err)
				}
			}
			var calls []*Call
			var incr *redis.IntCmd
			_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				calls = append(calls, Queue(ctx, p, incrScript, []string{scripted}))
				incr = p.Incr(ctx, plain)
				calls = append(calls, Queue(ctx, p, incrScript, []string{scripted}))
				return nil
			})
			if got := NoScript(calls[0].Cmd().Err()); got != tc.flush {
				t.Fatalf("first call NOSCRIPT = %v, want %v", got, tc.flush)
			}
			if err := Resend(ctx, rdb, calls); err != nil {
				t.Fatalf("Resend: %v", err)
			}
			for i, c := range calls {
				if n, err := c.Cmd().Int64(); err != nil || n != int64(i+1) {
					t.Errorf("call %d answered %d, %v; want %d", i, n, err, i+1)
				}
			}
			if n, err := incr.Result(); err != nil || n != 1 {
				t.Errorf("plain INCR answered %d, %v; want 1", n, err)
			}
			if n, _ := rdb.Get(ctx, plain).Int64(); n != 1 {
				t.Errorf("plain counter = %d, want 1: the pipeline's other commands ran once", n)
			}
			if n, _ := rdb.Get(ctx, scripted).Int64(); n != 2 {
				t.Errorf("scripted counter = %d, want 2: each script call ran once", n)
			}
		})
	}
}
