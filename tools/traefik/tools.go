//go:build tools

// Package tools pins the Traefik release that poolgate is built and tested against.
// Traefik's go.mod carries replace directives, so `go install traefik@version` refuses it;
// building it as a dependency of this module, which repeats those directives, works.
package tools

import _ "github.com/traefik/traefik/v3/cmd/traefik"
