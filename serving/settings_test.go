package serving

import (
	"reflect"
	"strings"
	"testing"
)

func TestArgvCarriesEverySetting(t *testing.T) {
	yes, no := true, false
	s := Settings{MaxModelLen: 4096, GPUMemoryUtilization: 0.85, TensorParallelSize: 2, MaxNumSeqs: 64,
		Dtype: "bfloat16", Quantization: "fp8", KVCacheDtype: "fp8", EnablePrefixCaching: &yes, TrustRemoteCode: true,
		ChatTemplate: "tmpl/chat.jinja", EngineArgs: []string{"--enforce-eager"}}
	got := s.Argv(ModelDir, []string{"current"}, "127.0.0.1", EnginePort)
	want := []string{"vllm", "serve", "/models/current", "--served-model-name", "current", "--host", "127.0.0.1", "--port", "8001",
		"--max-model-len", "4096", "--gpu-memory-utilization", "0.85", "--tensor-parallel-size", "2", "--max-num-seqs", "64",
		"--dtype", "bfloat16", "--quantization", "fp8", "--kv-cache-dtype", "fp8", "--enable-prefix-caching", "--trust-remote-code",
		"--chat-template", "/models/current/tmpl/chat.jinja", "--enforce-eager"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Argv =\n %q\nwant\n %q", got, want)
	}
	s.EnablePrefixCaching = &no
	if !strings.Contains(strings.Join(s.Flags(ModelDir), " "), "--no-enable-prefix-caching") {
		t.Errorf("enable-prefix-caching false must become --no-enable-prefix-caching")
	}
	// Every setting round-trips through the container's environment.
	env := map[string]string{}
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	back, err := FromEnv(func(k string) string { return env[k] })
	if err != nil || !reflect.DeepEqual(back, s) {
		t.Errorf("FromEnv(Env()) = %+v, %v; want %+v", back, err, s)
	}
	if len(env) != len(Keys()) {
		t.Errorf("Env has %d variables for %d settings", len(env), len(Keys()))
	}
	// And each one is parsed back by vLLM's recorded parser as given.
	in, err := VLLM().Parse(got[2:], true)
	if err != nil {
		t.Fatal(err)
	}
	if fromArgv := VLLM().FromInvocation(in); fromArgv.MaxModelLen != 4096 || fromArgv.TensorParallelSize != 2 || !*fromArgv.EnablePrefixCaching {
		t.Errorf("FromInvocation = %+v", fromArgv)
	}
}

func TestFromEnvErrors(t *testing.T) {
	_, err := FromEnv(func(k string) string {
		return map[string]string{"TENSOR_PARALLEL_SIZE": "two", "GPU_MEMORY_UTILIZATION": "1.5"}[k]
	})
	if err == nil || !strings.Contains(err.Error(), "TENSOR_PARALLEL_SIZE") || !strings.Contains(err.Error(), "GPU_MEMORY_UTILIZATION") {
		t.Errorf("err = %v, want both variables named", err)
	}
}

func TestOverride(t *testing.T) {
	no := false
	base := Settings{MaxModelLen: 2048, Dtype: "auto", EngineArgs: []string{"--enforce-eager"}}
	got := base.Override(Settings{MaxModelLen: 4096, EnablePrefixCaching: &no})
	if got.MaxModelLen != 4096 || got.Dtype != "auto" || got.EnablePrefixCaching == nil || *got.EnablePrefixCaching ||
		!reflect.DeepEqual(got.EngineArgs, []string{"--enforce-eager"}) {
		t.Errorf("Override = %+v", got)
	}
}
