//go:build !stagebench

package main

// native is nil without -tags stagebench: plugin.StageBench is not compiled then.
var native stageFunc
