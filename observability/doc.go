// Package observability holds no code: its folder ships the Prometheus
// scrape configurations and alert rules (prometheus/) and the Grafana
// dashboard with its provisioning (grafana/) for modelship's serving
// endpoints, and its tests check them: promtool's own checks and rule unit
// tests, every PromQL expression parsed by Prometheus's parser against the
// metric names modelship, its engines and its notifications expose, and an
// end-to-end run where a real Prometheus scrapes a release deployed on a
// real Docker engine.
package observability
