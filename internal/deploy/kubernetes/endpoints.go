package kubernetes

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"

	"k8s.io/client-go/rest"

	"github.com/modelship/modelship/serving"
)

// localURL starts (once) the listener serving instances' /ready from the
// rollout state, and returns its base URL.
func (t *Target) localURL() (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.inst == nil {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("kubernetes target: local readiness endpoint: %w", err)
		}
		t.inst = l
		mux := http.NewServeMux()
		mux.HandleFunc("GET /instances/{dep}/{release}/ready", t.serveReady)
		go http.Serve(l, mux)
	}
	return "http://" + t.inst.Addr().String(), nil
}

func (t *Target) serveReady(w http.ResponseWriter, r *http.Request) {
	st, err := t.Rollout(r.Context(), r.PathValue("dep"), r.PathValue("release"))
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		json.NewEncoder(w).Encode(map[string]any{"ready": false, "check": "rollout", "reason": err.Error()})
		return
	}
	if !st.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(map[string]any{"ready": st.Ready, "check": "rollout", "reason": st.Reason})
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
