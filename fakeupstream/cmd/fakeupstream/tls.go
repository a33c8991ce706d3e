package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"time"
)

// serveTLS serves h over TLS on addr with a fresh self-signed certificate for 127.0.0.1
// and localhost, written as PEM to certPath. http.Server negotiates HTTP/2 by ALPN, so a
// client multiplexes its streams over a few connections, as it would to a provider.
func serveTLS(h http.Handler, addr, certPath string, errc chan<- error) (*http.Server, error) {
	if certPath == "" {
		return nil, fmt.Errorf("-tls-listen needs -tls-cert")
	}
	cert, pemBytes, err := selfSigned()
	if err != nil {
		return nil, fmt.Errorf("making the TLS certificate: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for TLS: %w", err)
	}
	// Written once the listener is up: the file's appearance tells a waiting client that
	// the TLS port takes connections (internal/stack waits for it).
	if err := os.WriteFile(certPath, pemBytes, 0o644); err != nil {
		ln.Close()
		return nil, fmt.Errorf("writing the TLS certificate: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}},
	}
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	fmt.Fprintf(os.Stderr, "fakeupstream: listening on https://%s (HTTP/2)\n", ln.Addr())
	return srv, nil
}

func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "fakeupstream"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pemBytes, nil
}
