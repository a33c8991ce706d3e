// Package yaegi runs the poolgate plugin the way Traefik runs it: interpreted by Yaegi
// v0.16.1 (the version Traefik v3.7.13 embeds) from a GOPATH-style copy of the plugin,
// configured through mapstructure from a settings map, and driven against a real
// control service, PostgreSQL, Redis and the fake upstream. Everything lives in the tests;
// this file only names the package.
package yaegi
