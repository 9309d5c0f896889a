package serving

import "testing"

func TestBearerToken(t *testing.T) {
	for in, want := range map[string]string{"Bearer k1": "k1", "bearer k2": "k2", "BEARER k3": "k3"} {
		if got, ok := BearerToken(in); !ok || got != want {
			t.Errorf("BearerToken(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "Bearer ", "Basic dXNlcg==", "k1", "Bearerk1"} {
		if got, ok := BearerToken(in); ok {
			t.Errorf("BearerToken(%q) = %q, true; want no token", in, got)
		}
	}
}
