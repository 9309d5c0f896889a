// Package registryauth finds the credentials for pulling an image: from a
// Docker config (the config.json `docker login` writes, given to modelship
// as a secret), or from a user name and password for one registry. It
// encodes them the way each target sends them: Docker's X-Registry-Auth
// header, and a Kubernetes image pull secret (.dockerconfigjson).
//
// Credentials never appear in an error or a String: only the registry's
// name and the user name do.
package registryauth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/distribution/reference"
)

// Credential is a login for one registry.
type Credential struct {
	// Registry is the registry's host[:port] as image references name it
	// ("docker.io" for Docker Hub).
	Registry      string
	Username      string
	Password      string
	IdentityToken string
}

// String names the registry and the user, never the secret.
func (c Credential) String() string { return c.Username + "@" + c.Registry }

// Store is the credentials modelship may use, by registry.
type Store struct {
	byRegistry map[string]Credential
}

// dockerHub is how a Docker config names Docker Hub.
const dockerHub = "https://index.docker.io/v1/"

// ParseDockerConfig reads a Docker config.json: {"auths": {"HOST":
// {"auth": base64("user:password")} or {"username", "password"} or
// {"identitytoken"}}}. A credential helper (credsStore, credHelpers) cannot
// run here: its registries are an error naming them. Errors never quote
// the file's content.
func ParseDockerConfig(data []byte) (*Store, error) {
	var cfg struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			Username      string `json:"username"`
			Password      string `json:"password"`
			IdentityToken string `json:"identitytoken"`
		} `json:"auths"`
		CredsStore  string            `json:"credsStore"`
		CredHelpers map[string]string `json:"credHelpers"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		// The decoder's message quotes the content: say where, not what.
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("not a Docker config.json (JSON with \"auths\"): invalid JSON at byte %d", se.Offset)
		}
		return nil, fmt.Errorf("not a Docker config.json (JSON with \"auths\" mapping registries to logins)")
	}
	s := &Store{byRegistry: map[string]Credential{}}
	for host, a := range cfg.Auths {
		c := Credential{Registry: normalizeHost(host), Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken}
		if a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			user, pass, ok := strings.Cut(string(raw), ":")
			if err != nil || !ok {
				return nil, fmt.Errorf("auths.%s.auth: expected base64 of user:password", host)
			}
			c.Username, c.Password = user, pass
		}
		if c.Username == "" && c.IdentityToken == "" {
			return nil, fmt.Errorf("auths.%s: no credentials (auth, username and password, or identitytoken)", host)
		}
		s.byRegistry[c.Registry] = c
	}
	if len(s.byRegistry) == 0 {
		if cfg.CredsStore != "" || len(cfg.CredHelpers) > 0 {
			return nil, fmt.Errorf("the credentials are in a credential helper (credsStore/credHelpers), which modelship cannot run: give a config.json with the logins inline (auths)")
		}
		return nil, fmt.Errorf("no credentials in \"auths\"")
	}
	return s, nil
}

// With is s (which may be nil) with c added, replacing what s had for
// c's registry.
func (s *Store) With(c Credential) *Store {
	out := &Store{byRegistry: map[string]Credential{}}
	if s != nil {
		for k, v := range s.byRegistry {
			out.byRegistry[k] = v
		}
	}
	c.Registry = normalizeHost(c.Registry)
	out.byRegistry[c.Registry] = c
	return out
}

// normalizeHost turns a config key (https://index.docker.io/v1/,
// ghcr.io, http://127.0.0.1:5000) into the host an image reference names.
func normalizeHost(h string) string {
	h = strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	switch h {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return "docker.io"
	}
	return h
}

// Registry is the registry host an image reference pulls from
// ("docker.io" for a bare name).
func Registry(ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %v", ref, err)
	}
	return reference.Domain(named), nil
}

// For is the credential for ref's registry, and whether there is one.
func (s *Store) For(ref string) (Credential, bool) {
	if s == nil {
		return Credential{}, false
	}
	host, err := Registry(ref)
	if err != nil {
		return Credential{}, false
	}
	c, ok := s.byRegistry[host]
	return c, ok
}

// Header is Docker's X-Registry-Auth for c: base64url of the JSON
// AuthConfig.
func (c Credential) Header() string {
	server := c.Registry
	if server == "docker.io" {
		server = dockerHub
	}
	b, _ := json.Marshal(map[string]string{"username": c.Username, "password": c.Password,
		"identitytoken": c.IdentityToken, "serveraddress": server})
	return base64.URLEncoding.EncodeToString(b)
}

// DockerConfigJSON is the .dockerconfigjson of a Kubernetes image pull
// secret holding c alone.
func (c Credential) DockerConfigJSON() []byte {
	server := c.Registry
	if server == "docker.io" {
		server = dockerHub
	}
	entry := map[string]string{"username": c.Username, "password": c.Password,
		"auth": base64.StdEncoding.EncodeToString([]byte(c.Username + ":" + c.Password))}
	if c.IdentityToken != "" {
		entry = map[string]string{"identitytoken": c.IdentityToken}
	}
	b, _ := json.Marshal(map[string]any{"auths": map[string]any{server: entry}})
	return b
}

// Refused turns a registry's refusal of a pull into an error naming the
// registry and what to do; other errors come back as they are. with says
// whether credentials were sent.
func Refused(ref string, err error, with *Credential) error {
	if err == nil {
		return nil
	}
	msg := strings.ToLower(err.Error())
	if !strings.Contains(msg, "unauthorized") && !strings.Contains(msg, "authentication required") &&
		!strings.Contains(msg, "no basic auth credentials") && !strings.Contains(msg, "denied") {
		return err
	}
	host, _ := Registry(ref)
	if with == nil {
		return fmt.Errorf("registry %s refused to serve %s without credentials: give them in registry.docker-config (a Docker config.json, file: or env:) or registry.username and registry.password: %w", host, ref, err)
	}
	return fmt.Errorf("registry %s refused the credentials of %s for %s: %w", host, with.Username, ref, err)
}
