// Package jit is the module root package, the one the Cloud Functions Go
// buildpack builds (DESIGN §8): it must import the functions framework and
// register every function by name in init(). The four functions (intake,
// approval, grant, revoke) are registered here as they land; until then the
// import below keeps the buildpack on its declarative template and pins the
// framework version in go.mod.
package jit

import (
	_ "github.com/GoogleCloudPlatform/functions-framework-go/functions"
)
