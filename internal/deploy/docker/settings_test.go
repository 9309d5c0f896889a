package docker_test

import (
	"context"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/docker"
	"github.com/modelship/modelship/internal/testenv"
	"github.com/modelship/modelship/serving"
)

// releaseHost is the Docker host config of a release's container.
func releaseHost(t *testing.T, release string) *container.HostConfig {
	t.Helper()
	cli, _ := testenv.Docker(t)
	list, err := cli.ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", deploy.LabelRelease+"="+release), filters.Arg("label", docker.LabelRole+"=release"))})
	if err != nil || len(list) != 1 {
		t.Fatalf("release %s: %d containers, %v", release, len(list), err)
	}
	ins, err := cli.ContainerInspect(context.Background(), list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	return ins.HostConfig
}

// TestSettingsReachTheEngine: the serving settings of a deploy are the
// engine's command line in the running container, exactly the serving
// contract's argv (what a GPU server would run; here the simulator, which
// refuses what vLLM refuses, runs it); tensor parallelism gets a private
// shared-memory /dev/shm. Changing a setting changes the argv; a setting
// vLLM refuses at startup fails the deploy and the previous release keeps
// serving.
func TestSettingsReachTheEngine(t *testing.T) {
	good, _ := images(t)
	e := newEnv(t)
	ctx := context.Background()
	yes := true
	req := e.request(good.Tag)
	req.Settings = serving.Settings{MaxModelLen: 1024, GPUMemoryUtilization: 0.8, TensorParallelSize: 2, MaxNumSeqs: 16,
		Dtype: "bfloat16", KVCacheDtype: "fp8", EnablePrefixCaching: &yes, EngineArgs: []string{"--enforce-eager"}}
	req.ServedAliases = []string{"llm-v2"}
	res, err := e.d.Deploy(ctx, req)
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	want := req.Settings.Argv(serving.ModelDir, []string{"current", "llm-v2"}, "127.0.0.1", serving.EnginePort)
	if got := e.version(t).EngineArgv; !reflect.DeepEqual(got, want) {
		t.Errorf("engine argv in the container =\n %q\nwant the contract's\n %q", got, want)
	}
	if hc := releaseHost(t, res.Release.ID); hc.ShmSize != docker.ShmSize || hc.IpcMode != container.IPCModePrivate {
		t.Errorf("tensor-parallel-size 2: shm %d ipc %q, want %d private", hc.ShmSize, hc.IpcMode, int64(docker.ShmSize))
	}
	// The alias is a name clients may use, through the environment's endpoint.
	resp, err := http.Post(e.url+"/v1/completions", "application/json", strings.NewReader(`{"model": "llm-v2", "prompt": "hi", "max_tokens": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a completion for the alias llm-v2: %d", resp.StatusCode)
	}

	// One setting changed: the next release's engine runs with it, and
	// without shm once tensor parallelism is gone.
	req = e.request("modelship-test/good:2")
	req.Settings = serving.Settings{MaxModelLen: 512, TensorParallelSize: 1}
	res, err = e.d.Deploy(ctx, req)
	if err != nil {
		t.Fatalf("second deploy: %v", err)
	}
	got := e.version(t).EngineArgv
	if i := slices.Index(got, "--max-model-len"); i < 0 || got[i+1] != "512" || slices.Contains(got, "--enforce-eager") || slices.Contains(got, "2") {
		t.Errorf("after changing the settings the engine runs %q", got)
	}
	if hc := releaseHost(t, res.Release.ID); hc.ShmSize == docker.ShmSize {
		t.Errorf("tensor-parallel-size 1 still gets the large shm")
	}

	// vLLM refuses max-model-len above the model's 2048-token context at
	// startup: the deploy fails saying so, the live release is untouched.
	req = e.request("modelship-test/good:3")
	req.Settings = serving.Settings{MaxModelLen: 4096}
	_, err = e.d.Deploy(ctx, req)
	if err == nil || !strings.Contains(err.Error(), "max_model_len (4096) is greater than the derived max_model_len") {
		t.Fatalf("deploy with max-model-len 4096: %v, want vLLM's refusal", err)
	}
	if got := e.version(t).EngineArgv; !slices.Contains(got, "512") {
		t.Errorf("after the refused deploy the live engine runs %q, want the previous release", got)
	}
}

// TestAPIKeyGuardsTheEndpoint: a release given serving.api-key answers /v1/
// routes only with the key (verify sends it, so the deploy passes); the
// Hugging Face token reaches the container; neither appears in the deploy's
// log, its ledger, or the release's labels.
func TestAPIKeyGuardsTheEndpoint(t *testing.T) {
	good, _ := images(t)
	e := newEnv(t)
	const key, token = "sk-docker-5b7e11", "hf_docker_91c2"
	e.d.Verifier.(*deploy.Checks).APIKey = key
	req := e.request(good.Tag)
	req.Secrets = map[string]string{serving.EnvAPIKey: key, serving.EnvHFToken: token}
	res, err := e.d.Deploy(context.Background(), req)
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	testenv.CheckAPIKey(t, e.url, key)
	cli, _ := testenv.Docker(t)
	list, err := cli.ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", deploy.LabelRelease+"="+res.Release.ID), filters.Arg("label", docker.LabelRole+"=release"))})
	if err != nil || len(list) != 1 {
		t.Fatalf("release container: %d, %v", len(list), err)
	}
	ins, err := cli.ContainerInspect(context.Background(), list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ins.Config.Env, serving.EnvHFToken+"="+token) {
		t.Errorf("the container's environment has no %s", serving.EnvHFToken)
	}
	for k, v := range ins.Config.Labels {
		if strings.Contains(v, key) || strings.Contains(v, token) {
			t.Errorf("label %s holds a secret", k)
		}
	}
	ledger, _ := os.ReadFile(e.ledger)
	if s := e.log.String() + string(ledger); strings.Contains(s, key) || strings.Contains(s, token) {
		t.Errorf("a secret is in the deploy log or the ledger")
	}
}
