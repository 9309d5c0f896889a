package docker_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/docker"
	"github.com/modelship/modelship/internal/testenv"
)

// Changing an environment's port between deploys moves its gateway: the
// next deploy recreates the gateway on the new port (keeping the active
// release), verifies there and goes live; the old port is given up.
func TestPortChangeMovesTheGateway(t *testing.T) {
	good, _ := images(t)
	e := newEnv(t)
	first := e.deploy(t, good.Tag)
	oldURL := e.url
	e.port = testenv.FreePort(t)
	e.url = fmt.Sprintf("http://127.0.0.1:%d", e.port)
	if v := testenv.GetVersion(t, oldURL); v.Image != good.Tag {
		t.Fatalf("before the change /version on the old port = %+v", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := e.d.Deploy(ctx, e.request("modelship-test/good:2"))
	if err != nil {
		t.Fatalf("deploy after the port change: %v", err)
	}
	if v := e.version(t); v.Image != "modelship-test/good:2" {
		t.Errorf("/version on the new port = %+v, want the new release", v)
	}
	if resp, err := http.Get(oldURL + "/version"); err == nil {
		resp.Body.Close()
		t.Errorf("the old port still answers (%s) after the gateway moved", resp.Status)
	}
	if !strings.Contains(e.log.String(), "moving it") {
		t.Errorf("the deploy log does not say the gateway moved:\n%s", e.log.String())
	}
	hist, err := deploy.History(context.Background(), e.target, e.name)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].ID != first.Release.ID || !hist[1].Serving || hist[1].ID != res.Release.ID {
		t.Errorf("history after the move: %+v", hist)
	}
}

// On a remote engine (tcp://, ssh://) a candidate is published on that
// host's loopback only: nothing on the network reaches an unverified
// release. Its readiness is asked through the gateway, which is on the
// releases' network. (The engine here is local, reached over tcp through a
// proxy, so the target treats it as remote.)
func TestRemoteHostCandidatesOnLoopback(t *testing.T) {
	good, _ := images(t)
	cli, host := testenv.Docker(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sock := strings.TrimPrefix(host, "unix://")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("unix", sock)
				if err != nil {
					return
				}
				defer u.Close()
				go io.Copy(u, c)
				io.Copy(c, u)
			}()
		}
	}()
	e := newEnv(t)
	tg, err := docker.New(docker.Options{Host: "tcp://" + ln.Addr().String(), AllowPlaintext: true, StopTimeout: 5 * time.Second, Out: e.log})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	d := *e.d
	d.Target = tg
	var id string
	var bindings []string
	d.Started = func(r *deploy.Release) { id = r.ID }
	d.Hook = func(step string) {
		if step != "ready" {
			return
		}
		c, err := cli.ContainerInspect(context.Background(), "modelship-"+e.name+"-"+id)
		if err != nil {
			t.Errorf("inspecting the candidate: %v", err)
			return
		}
		for _, b := range c.HostConfig.PortBindings {
			for _, pb := range b {
				bindings = append(bindings, pb.HostIP)
			}
		}
		if in, err := tg.Instance(context.Background(), e.name, id); err != nil || in == nil || in.URL != "" {
			t.Errorf("candidate instance %+v %v: want no URL of its own (probed through the gateway)", in, err)
		}
	}
	for _, img := range []string{good.Tag, "modelship-test/good:2"} {
		if _, err := d.Deploy(context.Background(), e.request(img)); err != nil {
			t.Fatalf("deploy %s to the remote host: %v", img, err)
		}
		if len(bindings) == 0 {
			t.Fatalf("%s: the candidate publishes nothing", img)
		}
		for _, ip := range bindings {
			if ip != "127.0.0.1" {
				t.Errorf("%s: the candidate is published on %q, want the host's loopback only", img, ip)
			}
		}
		bindings = nil
	}
	e.serving(t, "modelship-test/good:2")
}
