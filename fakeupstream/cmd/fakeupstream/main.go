// Command fakeupstream serves the programmable fake upstream AI provider
// (package fakeupstream) for end-to-end tests, the demo and the benchmark.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/poolgate/poolgate/fakeupstream"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "fakeupstream: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:9090", "address to listen on")
	record := flag.Int("record", fakeupstream.DefaultMaxRecorded, "how many requests GET /_fake/requests keeps (0: none)")
	verbose := flag.Bool("verbose", false, "log one line per request")
	tlsListen := flag.String("tls-listen", "", "also serve the same fake over TLS with HTTP/2, as the providers do, on this address")
	tlsCert := flag.String("tls-cert", "", "with -tls-listen: write the self-signed certificate (PEM) here, for clients to trust")
	flag.Parse()

	fake := fakeupstream.New()
	fake.MaxRecorded = *record
	if *verbose {
		fake.Logger = log.New(os.Stderr, "fakeupstream: ", log.LstdFlags|log.Lmicroseconds)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	srv := &http.Server{Handler: fake, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 2) // the plain and the TLS server; neither blocks on exit
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(os.Stderr, "fakeupstream: listening on http://%s\n", ln.Addr())
	var tlsSrv *http.Server
	if *tlsListen != "" {
		if tlsSrv, err = serveTLS(fake, *tlsListen, *tlsCert, errc); err != nil {
			return err
		}
		defer tlsSrv.Close()
	}

	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	fake.Close() // release stalled responses so shutdown does not wait on them
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}
