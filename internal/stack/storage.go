package stack

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/poolgate/poolgate/internal/testenv"
)

func (st *Stack) startStorage(ctx context.Context, o Options) error {
	st.DatabaseURL, st.RedisURL = o.DatabaseURL, o.RedisURL
	if st.DatabaseURL == "" {
		pg, err := testenv.StartPostgres(ctx, filepath.Join(o.Dir, "postgres"))
		if err != nil {
			return fmt.Errorf("starting postgres: %w", err)
		}
		st.pg = pg
		if st.DatabaseURL, err = pg.CreateDatabase(ctx, "poolgate"); err != nil {
			return fmt.Errorf("creating database: %w", err)
		}
	}
	if st.RedisURL == "" {
		r, err := testenv.StartRedis(ctx, filepath.Join(o.Dir, "redis"))
		if err != nil {
			return fmt.Errorf("starting redis: %w", err)
		}
		st.redis = r
		st.RedisURL = r.URL
	}
	return nil
}

var errExternalStorage = errors.New("stack: only a throwaway server the stack started can be stopped and restarted")

// KillRedis ends the stack's redis-server with SIGKILL. It runs without persistence, so
// every slot, wait queue and sticky binding is lost; StartRedis brings up an empty server
// on the same port.
func (st *Stack) KillRedis() error {
	if st.redis == nil {
		return errExternalStorage
	}
	if err := st.redis.Kill(); err != nil {
		return fmt.Errorf("killing redis: %w", err)
	}
	return nil
}

// StartRedis starts a fresh, empty redis-server on the port of the one KillRedis ended.
func (st *Stack) StartRedis(ctx context.Context) error {
	if st.redis == nil {
		return errExternalStorage
	}
	if err := st.redis.Restart(ctx); err != nil {
		return fmt.Errorf("restarting redis: %w", err)
	}
	return nil
}

// StopPostgres shuts the stack's PostgreSQL down (fast or immediate, as pg_ctl -m says)
// and keeps its data; StartPostgres starts it again on the same port.
func (st *Stack) StopPostgres(mode testenv.ShutdownMode) error {
	if st.pg == nil {
		return errExternalStorage
	}
	if err := st.pg.Shutdown(mode); err != nil {
		return fmt.Errorf("stopping postgres: %w", err)
	}
	return nil
}

// StartPostgres starts the PostgreSQL that StopPostgres stopped, on its port and data.
func (st *Stack) StartPostgres(ctx context.Context) error {
	if st.pg == nil {
		return errExternalStorage
	}
	if err := st.pg.Restart(ctx); err != nil {
		return fmt.Errorf("restarting postgres: %w", err)
	}
	return nil
}
