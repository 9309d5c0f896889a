// Package e2e holds the end-to-end tests of the Dagger module: they call it
// the way users do, `dagger call ...` on a clean clone of the repository, on
// a real Dagger engine started by .ci/deps/dagger-engine.sh:
//
//	eval "$(.ci/deps/dagger-engine.sh start)"
//	go test ./internal/e2e/
//
// Without an engine (no _EXPERIMENTAL_DAGGER_RUNNER_HOST) the tests skip with
// a message, except under CI=true where a missing engine fails them.
package e2e
