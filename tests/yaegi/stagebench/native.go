//go:build stagebench

package main

import "github.com/poolgate/poolgate/plugin"

// native is the plugin's stage benchmark compiled into this program.
var native stageFunc = plugin.StageBench
