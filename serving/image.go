package serving

import (
	"encoding/json"
	"fmt"
)

// ImageFacts are what a serving image's layout says of how it was made,
// beside its serving contract.
type ImageFacts struct {
	Engine      string // the engine the image runs: vllm, sim or ollama
	ModelDigest string // the checkpoint's content digest (sha256:...)
	// Revision is the git commit the image is built from; Created the
	// commit's time (RFC 3339), so identical inputs give an identical
	// image. Either may be empty (no repository metadata).
	Revision, Created string
	// BaseName and BaseDigest name the base image, as pulled.
	BaseName, BaseDigest string
}

// ImageLayout is a serving image's configuration beside its files (the
// checkpoint at ModelDir, the binary at BinaryPath): the environment that
// `modelship serve` turns into the engine's command line, the labels the
// deploy targets read, the entrypoint and the exposed port.
type ImageLayout struct {
	// Env is the environment, NAME=VALUE, in the image's order.
	Env []string
	// Labels are the labels as [name, value] pairs, in a fixed order.
	Labels     [][2]string
	Entrypoint []string
	Port       int
}

// Healthcheck is a serving image's health check, Docker's HEALTHCHECK CMD
// form: modelship smoke against the image's own port (the model listed,
// one generation, /version answers), within 4s so it finishes inside the
// 5s timeout the Docker target gives each check. OCI image configs have no
// HEALTHCHECK field, so it travels as the label LabelHealthcheck (JSON) for
// the deploy target to set on the containers it creates.
func Healthcheck() []string {
	return []string{"CMD", BinaryPath, "smoke", "--endpoint", fmt.Sprintf("http://127.0.0.1:%d", Port), "--timeout", "4s"}
}

// Layout is the layout of the serving image of c with the facts f: the
// environment (model path, engine, model digest, port, served names, the
// settings' variables, the git commit), `modelship serve` as entrypoint on
// Port, and the labels org.opencontainers.image.{title,source,base.name,
// base.digest,revision,created}, LabelModelDigest, LabelEngine,
// LabelBinary, LabelSettings (the engine flags c's settings become, JSON)
// and LabelHealthcheck (see Healthcheck).
func (c *Contract) Layout(f ImageFacts) (*ImageLayout, error) {
	if len(c.Argv) <= len(VLLMProgram) {
		return nil, fmt.Errorf("serving contract: argv %q is not a vLLM command line (%v MODEL ...)", c.Argv, VLLMProgram)
	}
	flags, err := json.Marshal(c.Argv[len(VLLMProgram)+1:])
	if err != nil {
		return nil, err
	}
	health, err := json.Marshal(Healthcheck())
	if err != nil {
		return nil, err
	}
	l := &ImageLayout{Entrypoint: []string{BinaryPath, "serve"}, Port: Port}
	l.Env = append([]string{EnvModelPath + "=" + ModelDir, EnvEngine + "=" + f.Engine, EnvModelDigest + "=" + f.ModelDigest,
		fmt.Sprintf("%s=%d", EnvPort, Port), EnvServedName + "=" + c.ServedName, EnvServedAliases + "=" + JoinWords(c.Aliases)}, c.Env...)
	l.Labels = [][2]string{
		{"org.opencontainers.image.title", "modelship serving image"},
		{"org.opencontainers.image.source", "https://github.com/modelship/modelship"},
		{"org.opencontainers.image.base.name", f.BaseName},
		{"org.opencontainers.image.base.digest", f.BaseDigest},
		{LabelModelDigest, f.ModelDigest},
		{LabelEngine, f.Engine},
		{LabelBinary, BinaryPath},
		{LabelSettings, string(flags)},
		{LabelHealthcheck, string(health)},
	}
	if f.Revision != "" {
		l.Env = append(l.Env, EnvGitSHA+"="+f.Revision)
		l.Labels = append(l.Labels, [2]string{LabelRevision, f.Revision})
	}
	if f.Created != "" {
		l.Labels = append(l.Labels, [2]string{"org.opencontainers.image.created", f.Created})
	}
	return l, nil
}
