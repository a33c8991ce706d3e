// Package ext stands in for Traefik's nested module github.com/traefik/traefik/dynamic/ext,
// which Traefik's go.mod replaces with a directory that the published module zip does not
// contain. Traefik embeds these types inline in its dynamic configuration; the open-source
// build needs them only to exist.
package ext

// HTTP is embedded in dynamic.HTTPConfiguration.
type HTTP struct{}

// Router is embedded in dynamic.Router.
type Router struct{}

// RouterIng is the ingress-annotation form of Router.
type RouterIng struct{}

// ToRouter converts the annotation form.
func (RouterIng) ToRouter() Router { return Router{} }
