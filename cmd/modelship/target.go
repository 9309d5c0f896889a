package main

import (
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"

	"github.com/modelship/modelship/internal/config"
	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/docker"
	"github.com/modelship/modelship/internal/deploy/kubernetes"
)

// newTarget is the deploy target of environment name (environments.NAME.target):
// a Docker host or a Kubernetes cluster. out receives the target's notes.
// The returned URL is where verify reaches the environment when it has no
// url of its own ("" for Docker, whose url always has a default).
func newTarget(name string, env *config.Environment, out io.Writer) (deploy.Target, string, func(), error) {
	switch env.Target {
	case "docker":
		tg, err := docker.New(docker.Options{Host: env.Docker.Host, TLSVerify: env.Docker.TLSVerify, CertPath: env.Docker.CertPath})
		if err != nil {
			return nil, "", nil, fmt.Errorf("environments.%s.docker: %w", name, err)
		}
		return tg, "", func() { tg.Close() }, nil
	case "kubernetes":
		tg, err := kubernetes.New(kubernetesOptions(env, out))
		if err != nil {
			return nil, "", nil, fmt.Errorf("environments.%s.kubernetes: %w", name, err)
		}
		url, err := tg.ServiceURL()
		if err != nil {
			tg.Close()
			return nil, "", nil, err
		}
		return tg, url, func() { tg.Close() }, nil
	}
	return nil, "", nil, fmt.Errorf("environments.%s.target: expected docker or kubernetes, got %q", name, env.Target)
}

// kubernetesOptions maps environments.NAME.kubernetes onto the target's options.
func kubernetesOptions(env *config.Environment, out io.Writer) kubernetes.Options {
	k := env.Kubernetes
	o := kubernetes.Options{Kubeconfig: k.Kubeconfig, Context: k.Context, Namespace: k.Namespace, Name: k.Name,
		Replicas: k.Replicas, GPUs: k.GPUs, NodeSelector: k.NodeSelector, ServicePort: k.ServicePort,
		ImagePullPolicy: corev1.PullPolicy(k.ImagePullPolicy), Out: out}
	for _, t := range k.Tolerations {
		tol := corev1.Toleration{Key: t.Key, Operator: corev1.TolerationOperator(t.Operator), Value: t.Value, Effect: corev1.TaintEffect(t.Effect)}
		if t.TolerationSeconds != nil {
			s := int64(*t.TolerationSeconds)
			tol.TolerationSeconds = &s
		}
		o.Tolerations = append(o.Tolerations, tol)
	}
	return o
}

// writerFunc is an io.Writer from a function.
type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
