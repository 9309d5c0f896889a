// Package deploy puts a serving image into an environment and keeps the
// previous release serving until the new one has proved itself.
//
// A deploy is: resolve the image, place it on GPUs with fit (failing before
// anything is stopped when it cannot fit), take the environment's lock, run
// a strategy (recreate or blue-green, auto picks from GPU memory), wait until
// the new release is ready (GET /ready: /health, the served name in
// /v1/models and one generation) within a load budget that grows with the
// checkpoint, switch the environment's router, verify through the public
// endpoint, and roll back automatically when verify fails or the deploy is
// interrupted.
//
// Where releases run is a Target (one package per implementation: a Docker
// engine is package deploy/docker, a Kubernetes cluster package
// deploy/kubernetes). Strategies only talk to the Target interface, made of
// the small interfaces each step needs (Starter, Stopper, Switcher, Records,
// Locker, Readiness: the target says whether a release answers /ready); a
// target that places releases itself (Kubernetes schedules pods on its own
// GPUs) also implements Planner, and a rolling update runs the blue-green
// steps with the target doing the surge.
//
// Canary (canary_run.go, shadow_run.go, rollout_run.go) is blue-green with
// the switch made in steps: on a target whose router is a Splitter (the
// Docker gateway), an optional shadow step mirrors live requests to the new
// release and compares its answers, then each step sends a share of the
// requests to it, measures every request at the router and judges the two
// versions with internal/analysis every Interval; the first failed step
// (or an operator's modelship abort) sends all traffic back at once, and
// the undo of any failure or interrupt clears the split before anything
// else. The last step, 100%, is the blue-green switch.
//
// The release history lives with the releases themselves (the target keeps
// it, on Docker as container labels, on Kubernetes as annotations) and every event is also appended to a
// local JSONL ledger for audit. A target that is a Pruner drops the
// releases beyond Request.KeepReleases after each deploy and rollback
// (Prunable: never the serving release nor the rollback target).
package deploy
