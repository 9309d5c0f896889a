package serve

import (
	"github.com/modelship/modelship/internal/shadow"
	"github.com/modelship/modelship/suite"
)

// RoutePath is a replica's rollout endpoint, on the public port and
// refused without the admin token (serving.HeaderAdminToken equal to
// Config.AdminToken; no token configured: 404). POST with a Route
// replaces the replica's route and answers its RouteState; GET answers
// the RouteState. This is how a canary on Kubernetes gets a sticky header
// and a shadow without a service mesh: the deployer sets each pod's route
// through the API server's pod proxy.
const RoutePath = "/-/modelship/route"

// HeaderRouted marks a request one replica forwarded to another for its
// sticky header: the receiver answers it itself, whatever its own route.
const HeaderRouted = "X-Modelship-Routed"

// Route is what a replica does with the requests it receives during a
// rollout; the zero Route answers every request itself.
type Route struct {
	// Sticky, when set, sends each request carrying Sticky.Header to the
	// version its value hashes to (sticky.Canary), forwarding it to the
	// other version's Service when that is not this replica's.
	Sticky *StickyRoute `json:"sticky,omitempty"`
	// Shadow, when set, mirrors a sample of the requests this replica
	// answers to a candidate release. Posting the same Upstream and
	// Percent again keeps the running mirror and its counts; another one,
	// or none, stops it (RouteState.Shadow is then its final report).
	Shadow *ShadowRoute `json:"shadow,omitempty"`
}

// StickyRoute is a canary's sticky split as one replica applies it.
type StickyRoute struct {
	Header  string  `json:"header"`
	Percent float64 `json:"percent"` // of header values on the canary, (0, 100]
	// Self is this replica's version: "stable" or "canary".
	Self string `json:"self"`
	// Stable and Canary are each version's base URL (a Service's
	// http://CLUSTER-IP:PORT), where a request for the other version goes.
	Stable string `json:"stable"`
	Canary string `json:"canary"`
}

// Versions of StickyRoute.Self.
const (
	SelfStable = "stable"
	SelfCanary = "canary"
)

// ShadowRoute mirrors Percent of the requests a replica answers itself to
// Upstream, checking both answers with Checks (shadow.Options).
type ShadowRoute struct {
	Upstream string            `json:"upstream"`
	Percent  float64           `json:"percent"`
	Queue    int               `json:"queue,omitempty"`
	Checks   []suite.TextCheck `json:"checks,omitempty"`
}

// RouteState is the answer of RoutePath: the route in force and the
// mirror's report (nil when no mirror ran; after a POST that stopped one,
// its final report).
type RouteState struct {
	Route  Route          `json:"route"`
	Shadow *shadow.Report `json:"shadow,omitempty"`
}
