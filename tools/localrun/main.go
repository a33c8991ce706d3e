// Command localrun runs the whole gateway in the foreground for `make run`: PostgreSQL and
// Redis (throwaway servers unless POOLGATE_DATABASE_URL / POOLGATE_REDIS_URL are set),
// controlsvc, a fake upstream to try it against, and Traefik with the plugin. It prints the
// admin token and curl commands to add an account and send a first request. Ctrl-C stops
// everything and removes the throwaway data.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/poolgate/poolgate/internal/stack"
)

func main() {
	var (
		bin     = flag.String("bin", "bin", "directory holding traefik, controlsvc and fakeupstream")
		gateway = flag.String("gateway", "127.0.0.1:8080", "Traefik listen address")
		control = flag.String("control", "127.0.0.1:8090", "controlsvc listen address")
		fake    = flag.String("fake", "127.0.0.1:9090", "fake upstream listen address")
	)
	flag.Parse()
	if err := run(*bin, *gateway, *control, *fake); err != nil {
		fmt.Fprintln(os.Stderr, "localrun:", err)
		os.Exit(1)
	}
}

func run(bin, gateway, control, fake string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "poolgate-run-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := stack.Start(ctx, stack.Options{
		Dir:             dir,
		RepoRoot:        root,
		TraefikBin:      filepath.Join(bin, "traefik"),
		ControlsvcBin:   filepath.Join(bin, "controlsvc"),
		FakeupstreamBin: filepath.Join(bin, "fakeupstream"),
		DatabaseURL:     os.Getenv("POOLGATE_DATABASE_URL"),
		RedisURL:        os.Getenv("POOLGATE_REDIS_URL"),
		AdminToken:      os.Getenv("POOLGATE_ADMIN_TOKEN"),
		PluginSecret:    os.Getenv("POOLGATE_PLUGIN_SECRET"),
		GatewayAddr:     gateway,
		AdminAddr:       "127.0.0.1:8081",
		ControlAddr:     control,
		FakeAddr:        fake,
		Logs:            os.Stderr,
	})
	if err != nil {
		return err
	}
	defer st.Stop()
	printWelcome(st)
	<-ctx.Done()
	fmt.Println("\nstopping…")
	return nil
}

func printWelcome(st *stack.Stack) {
	gw, adm, admURL := st.GatewayURL, st.AdminToken, st.AdminURL
	fmt.Printf(`
poolgate is running.
  gateway (Traefik + plugin): %s
  admin API:                  %s/api/v1/admin   (Authorization: Bearer %s; Traefik's admin entrypoint)
  controlsvc:                 %s (internal), %s (admin), %s/metrics
  fake upstream (to try it):  %s
  database:                   %s
  redis:                      %s
  credential key:             %s

Add a user, a group, an account and a key, then send a request:

  H='Authorization: Bearer %s'; A=%s/api/v1/admin
  curl -s -H "$H" $A/users -d '{"name":"alice","concurrency":5,"balance_usd":10}'
  curl -s -H "$H" $A/groups -d '{"name":"default","platform":"openai"}'
  curl -s -H "$H" $A/accounts -d '{"name":"fake","platform":"openai","base_url":"%s","credential":{"api_key":"sk-upstream"},"group_ids":[1]}'
  KEY=$(curl -s -H "$H" $A/api-keys -d '{"user_id":1,"group_id":1,"name":"demo"}' | sed 's/.*"key":"\([^"]*\)".*/\1/')
  curl -s %s/v1/responses -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d '{"model":"gpt-4o-mini","input":"Hello"}'

Ctrl-C stops everything.
`, gw, admURL, adm, st.ControlURL, st.ControlAdminURL, st.MetricsURL, st.FakeURL, st.DatabaseURL, st.RedisURL, credentialKeyNote(), adm, admURL, st.FakeURL, gw)
}

// credentialKeyNote says which key encrypts the accounts' credentials: a kept database
// (POOLGATE_DATABASE_URL) must see the same key on every run.
func credentialKeyNote() string {
	if os.Getenv("POOLGATE_CREDENTIAL_KEY") != "" {
		return "POOLGATE_CREDENTIAL_KEY from the environment"
	}
	return "the published development key (set POOLGATE_CREDENTIAL_KEY for data you keep)"
}
