package registryauth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDockerConfig(t *testing.T) {
	auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
	s, err := ParseDockerConfig([]byte(`{"auths": {"https://index.docker.io/v1/": {"auth": "` + auth + `"},
		"ghcr.io": {"username": "bob", "password": "tok"}, "127.0.0.1:5000": {"identitytoken": "id"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for ref, user := range map[string]string{"vllm/vllm-openai:v0.16.0": "alice", "ghcr.io/acme/llm@sha256:" + strings.Repeat("a", 64): "bob", "127.0.0.1:5000/x:1": ""} {
		c, ok := s.For(ref)
		if !ok || c.Username != user {
			t.Errorf("For(%s) = %v %v, want user %q", ref, c, ok, user)
		}
	}
	if _, ok := s.For("quay.io/x:1"); ok {
		t.Error("a registry the config does not name got credentials")
	}
	c, _ := s.For("ghcr.io/acme/llm:1")
	var h map[string]string
	raw, _ := base64.URLEncoding.DecodeString(c.Header())
	if json.Unmarshal(raw, &h) != nil || h["username"] != "bob" || h["password"] != "tok" || h["serveraddress"] != "ghcr.io" {
		t.Errorf("X-Registry-Auth decodes to %v", h)
	}
	var k map[string]map[string]map[string]string
	if json.Unmarshal(c.DockerConfigJSON(), &k) != nil || k["auths"]["ghcr.io"]["auth"] != base64.StdEncoding.EncodeToString([]byte("bob:tok")) {
		t.Errorf(".dockerconfigjson = %s", c.DockerConfigJSON())
	}
	if strings.Contains(c.String(), "tok") {
		t.Errorf("String() shows the password: %s", c)
	}
}

func TestDockerConfigErrors(t *testing.T) {
	for in, want := range map[string]string{
		`{"auths": {"ghcr.io": {"auth": "bm90LWEtcGFpcg=="}}}`: "expected base64 of user:password",
		`{"credsStore": "desktop"}`:                            "credential helper",
		`{"auths": {}}`:                                        "no credentials",
		`{"auths": {"ghcr.io": {"auth": "c2VjcmV0cGFzc3dvcmQ`:  "not a Docker config.json",
	} {
		_, err := ParseDockerConfig([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "c2VjcmV0") {
			t.Errorf("ParseDockerConfig(%s) = %v, want %q and no content", in, err, want)
		}
	}
}

func TestRefused(t *testing.T) {
	denied := errors.New("Error response from daemon: Head \"http://r:5000/v2/x/manifests/1\": no basic auth credentials")
	if err := Refused("r:5000/x:1", denied, nil); !strings.Contains(err.Error(), "registry r:5000 refused to serve r:5000/x:1 without credentials") {
		t.Errorf("without: %v", err)
	}
	c := Credential{Registry: "r:5000", Username: "u", Password: "p4ss"}
	if err := Refused("r:5000/x:1", denied, &c); !strings.Contains(err.Error(), "refused the credentials of u") || strings.Contains(err.Error(), "p4ss") {
		t.Errorf("with: %v", err)
	}
	other := errors.New("manifest unknown")
	if err := Refused("r:5000/x:1", other, nil); err != other {
		t.Errorf("another error was rewritten: %v", err)
	}
}
