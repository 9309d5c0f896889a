package kubernetes

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"

	"k8s.io/client-go/rest"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/serving"
)

// Ready is the rollout's state of in's Deployment for its release
// (deploy.Readiness): the pods' readiness probes ask their /ready, and the
// Deployment controller counts the ready replicas.
func (t *Target) Ready(ctx context.Context, in *deploy.Instance) (bool, string) {
	st, err := t.Rollout(ctx, in.ID, in.Release)
	if err != nil {
		return false, "rollout: " + err.Error()
	}
	if st.Ready {
		return true, ""
	}
	return false, "rollout: " + st.Reason
}

// ServiceURL is a local base URL (http://127.0.0.1:PORT) that reaches the
// environment's Service through the API server's service proxy, with this
// target's credentials: how verify reaches the endpoint when the
// environment has no url of its own.
func (t *Target) ServiceURL() (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.svc == nil {
		rt, err := rest.TransportFor(t.cfg)
		if err != nil {
			return "", fmt.Errorf("kubernetes target: %w", err)
		}
		api, err := url.Parse(t.cfg.Host)
		if err != nil {
			return "", fmt.Errorf("kubernetes target: API server %q: %w", t.cfg.Host, err)
		}
		prefix := strings.TrimRight(api.Path, "/") + fmt.Sprintf("/api/v1/namespaces/%s/services/http:%s:%d/proxy", t.opt.Namespace, t.opt.Name, t.opt.ServicePort)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("kubernetes target: local service proxy: %w", err)
		}
		t.svc = l
		proxy := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.Out.URL.Scheme, pr.Out.URL.Host = api.Scheme, api.Host
				pr.Out.URL.Path = prefix + pr.In.URL.Path
				pr.Out.URL.RawPath = ""
				pr.Out.Host = api.Host
				// The API server takes Authorization for itself (and
				// drops it); the endpoint's API key travels as the
				// api-key header, which modelship serve also accepts.
				if a := pr.Out.Header.Get("Authorization"); a != "" {
					pr.Out.Header.Del("Authorization")
					if key, ok := serving.BearerToken(a); ok {
						pr.Out.Header.Set(serving.HeaderAPIKey, key)
					}
				}
			},
			Transport:     rt,
			FlushInterval: -1,
		}
		go http.Serve(l, proxy)
	}
	return "http://" + t.svc.Addr().String(), nil
}
