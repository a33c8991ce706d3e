package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// claimTTL bounds how long a crashed test run keeps a database claimed.
const claimTTL = 30 * time.Minute

// redisDBs is how many numbered databases a default Redis has; database 0
// holds the claims and is never handed out.
const redisDBs = 16

func claimKey(db int) string { return "poolgate:testenv:claim:" + strconv.Itoa(db) }

// claimRedisDB claims a numbered database on the server at serverURL that no
// other test (in this or another process) holds, flushes it and returns its
// URL with a release func that flushes it again and drops the claim.
func claimRedisDB(ctx context.Context, serverURL string) (string, func() error, error) {
	opts, err := redis.ParseURL(serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("parsing $POOLGATE_TEST_REDIS_URL: %w", err)
	}
	opts.DB = 0
	admin := redis.NewClient(opts)
	token := randHex(8)
	for {
		for db := 1; db < redisDBs; db++ {
			ok, err := admin.SetNX(ctx, claimKey(db), token, claimTTL).Result()
			if err != nil {
				admin.Close()
				return "", nil, fmt.Errorf("claiming a database on $POOLGATE_TEST_REDIS_URL: %w", err)
			}
			if !ok {
				continue
			}
			dbURL, release, err := useClaimedDB(ctx, admin, opts, serverURL, db, token)
			if err != nil {
				admin.Del(context.WithoutCancel(ctx), claimKey(db))
				admin.Close()
				return "", nil, err
			}
			return dbURL, release, nil
		}
		select {
		case <-ctx.Done():
			admin.Close()
			return "", nil, fmt.Errorf("no free database on $POOLGATE_TEST_REDIS_URL (all %d claimed): %w", redisDBs-1, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func useClaimedDB(ctx context.Context, admin *redis.Client, opts *redis.Options, serverURL string, db int, token string) (string, func() error, error) {
	dbOpts := *opts
	dbOpts.DB = db
	flush := func(ctx context.Context) error {
		c := redis.NewClient(&dbOpts)
		defer c.Close()
		return c.FlushDB(ctx).Err()
	}
	if err := flush(ctx); err != nil {
		return "", nil, fmt.Errorf("flushing database %d: %w", db, err)
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("parsing $POOLGATE_TEST_REDIS_URL: %w", err)
	}
	u.Path = "/" + strconv.Itoa(db)
	release := func() error {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := flush(ctx)
		// Drop the claim only if it is still ours (it may have expired and
		// been taken by another run).
		if cur, getErr := admin.Get(ctx, claimKey(db)).Result(); getErr == nil && cur == token {
			err = errors.Join(err, admin.Del(ctx, claimKey(db)).Err())
		}
		if err != nil {
			return fmt.Errorf("releasing redis database %d: %w", db, err)
		}
		return nil
	}
	return u.String(), release, nil
}
