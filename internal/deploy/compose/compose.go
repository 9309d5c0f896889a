// Package compose reads a docker compose project with the Compose
// specification's own Go library (compose-go) and turns one of its
// services into what the docker target adds to each release container
// (docker.Attach): a compose target is the docker target whose releases
// replace that service.
//
// What a release keeps of the service: its networks (joined), volumes
// and binds (mounted), environment (the release's own variables win),
// device reservations (deploy.resources.reservations.devices and gpus:,
// as device requests; GPUs a deploy chooses itself replace the "gpu"
// ones) and labels. What it does not keep: the image (the release image
// replaces it), command and entrypoint (the release runs `modelship
// serve`), ports (the gateway publishes environments.NAME.port) and
// healthcheck (the serving image's).
//
// The service's name belongs to the environment's gateway: it joins the
// service's networks with the service name (and the service's aliases)
// as aliases, so the project's other services (Prometheus scraping
// vllm-server:8000) reach whichever release is active and see every
// switch. The release containers carry compose's labels (project,
// service, oneoff, container-number, config-hash, config files, working
// dir), so `docker compose -p PROJECT ps` and `logs SERVICE` show them.
package compose

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/docker/api/types/container"

	"github.com/modelship/modelship/internal/deploy/docker"
)

// Compose's labels (github.com/docker/compose/v5 pkg/api/labels.go):
// `docker compose ps` lists the containers with the project label, a
// config-hash label and oneoff False; `logs SERVICE` those with the
// service label too.
const (
	LabelProject         = "com.docker.compose.project"
	LabelService         = "com.docker.compose.service"
	LabelOneoff          = "com.docker.compose.oneoff"
	LabelContainerNumber = "com.docker.compose.container-number"
	LabelConfigHash      = "com.docker.compose.config-hash"
	LabelConfigFiles     = "com.docker.compose.project.config_files"
	LabelWorkingDir      = "com.docker.compose.project.working_dir"
	LabelEnvironmentFile = "com.docker.compose.project.environment_file"
)

// Options say which project and service to read.
type Options struct {
	// Files are the compose files, as `docker compose -f` takes them; the
	// first one's directory is the project's working directory.
	Files []string
	// Service is the service the releases replace.
	Service string
	// Project is the project name; "" takes compose's default (the files'
	// name:, else the working directory's name).
	Project string
	// WorkingDir is the project directory (`--project-directory`); ""
	// is the first file's directory.
	WorkingDir string
	// EnvFiles are read for interpolation (`--env-file`); none reads the
	// working directory's .env when there is one.
	EnvFiles []string
	// Environ is the process environment interpolation reads (KEY=VALUE);
	// nil reads os.Environ().
	Environ []string
}

// Service is the service a compose target deploys, as read.
type Service struct {
	// Project is the project's name, Name the service's.
	Project, Name string
	// WorkingDir and ConfigFiles are absolute paths.
	WorkingDir  string
	ConfigFiles []string
	// Image is the service's own image in the files (the release image
	// replaces it).
	Image string
	// Profiles are the service's profiles. Without one, a bare `docker
	// compose up` recreates the service from the files' image, replacing
	// the live release; with one (e.g. modelship), compose leaves the
	// service's containers to modelship.
	Profiles []string
	// Attach is what every release container and the gateway carry.
	Attach docker.Attach
}

// Load reads the project and its service. Every error names the file
// (and line where compose-go gives one) or the service, and what was
// expected: a file that does not parse, a variable without a value or
// default, a missing service (with the ones there are), a service with
// build: and no image:.
func Load(ctx context.Context, o Options) (*Service, error) {
	if len(o.Files) == 0 {
		return nil, errors.New("no compose file given")
	}
	files := make([]string, len(o.Files))
	for i, f := range o.Files {
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, err
		}
		files[i] = abs
	}
	environ := o.Environ
	if environ == nil {
		environ = os.Environ()
	}
	fns := []cli.ProjectOptionsFn{
		cli.WithWorkingDirectory(cmp.Or(o.WorkingDir, filepath.Dir(files[0]))),
		cli.WithEnv(environ),
		cli.WithEnvFiles(o.EnvFiles...),
		cli.WithDotEnv,
		cli.WithProfiles([]string{"*"}),
		cli.WithLoadOptions(func(lo *loader.Options) {
			if lo.Interpolate != nil {
				lo.Interpolate.Substitute = unsetVars
			}
		}),
	}
	if o.Project != "" {
		fns = append(fns, cli.WithName(o.Project))
	}
	opts, err := cli.NewProjectOptions(files, fns...)
	if err != nil {
		return nil, fmt.Errorf("compose files %s: %w", strings.Join(o.Files, ", "), err)
	}
	project, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, loadError(files, err)
	}
	return service(project, o, files)
}

// service picks o.Service out of project and converts it.
func service(project *types.Project, o Options, files []string) (*Service, error) {
	svc, ok := project.Services[o.Service]
	if !ok {
		if _, off := project.DisabledServices[o.Service]; off {
			return nil, fmt.Errorf("compose project %s: service %s is disabled", project.Name, o.Service)
		}
		names := project.ServiceNames()
		slices.Sort(names)
		return nil, fmt.Errorf("compose files %s have no service %q; the services are: %s", strings.Join(o.Files, ", "), o.Service, strings.Join(names, ", "))
	}
	where := fmt.Sprintf("compose files %s: services.%s", strings.Join(o.Files, ", "), svc.Name)
	if svc.Image == "" && svc.Build != nil {
		return nil, fmt.Errorf("%s has build: and no image:; modelship deploys the serving image it built (the release image replaces the service's image), so give the service an image: (e.g. the one your pipeline publishes)", where)
	}
	if svc.NetworkMode != "" {
		return nil, fmt.Errorf("%s: network_mode %q is not supported: releases join the service's networks, where the gateway answers as %s", where, svc.NetworkMode, svc.Name)
	}
	nets, gwNets := networks(project, svc)
	mounts, err := mounts(project, svc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	s := &Service{Project: project.Name, Name: svc.Name, WorkingDir: project.WorkingDir, ConfigFiles: files, Image: svc.Image, Profiles: svc.Profiles}
	s.Attach = docker.Attach{
		Labels:          labels(project, svc, files, o.EnvFiles),
		Networks:        nets,
		GatewayNetworks: gwNets,
		Mounts:          mounts,
		Env:             environment(svc),
		DeviceRequests:  devices(svc),
	}
	return s, nil
}

// labels are the service's labels and compose's.
func labels(project *types.Project, svc types.ServiceConfig, files, envFiles []string) map[string]string {
	l := map[string]string{}
	for k, v := range svc.Labels {
		l[k] = v
	}
	l[LabelProject] = project.Name
	l[LabelService] = svc.Name
	l[LabelOneoff] = "False"
	l[LabelContainerNumber] = "1"
	l[LabelConfigHash] = configHash(svc)
	l[LabelConfigFiles] = strings.Join(files, ",")
	l[LabelWorkingDir] = project.WorkingDir
	if len(envFiles) > 0 {
		abs := make([]string, len(envFiles))
		for i, f := range envFiles {
			abs[i], _ = filepath.Abs(f)
		}
		l[LabelEnvironmentFile] = strings.Join(abs, ",")
	}
	return l
}

// configHash is the sha256 of the service as read, as compose stamps
// its containers with the hash of their service's config.
func configHash(svc types.ServiceConfig) string {
	b, _ := json.Marshal(svc)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// environment is the service's environment as KEY=VALUE, sorted;
// variables without a value are left out (compose does the same).
func environment(svc types.ServiceConfig) []string {
	var env []string
	for k, v := range svc.Environment {
		if v != nil {
			env = append(env, k+"="+*v)
		}
	}
	slices.Sort(env)
	return env
}

// devices are the service's device reservations and gpus: as device
// requests.
func devices(svc types.ServiceConfig) []container.DeviceRequest {
	var reqs []types.DeviceRequest
	if d := svc.Deploy; d != nil && d.Resources.Reservations != nil {
		reqs = append(reqs, d.Resources.Reservations.Devices...)
	}
	for _, g := range svc.Gpus {
		if len(g.Capabilities) == 0 {
			g.Capabilities = []string{"gpu"}
		}
		reqs = append(reqs, g)
	}
	var out []container.DeviceRequest
	for _, r := range reqs {
		dr := container.DeviceRequest{Driver: r.Driver, Count: int(r.Count), DeviceIDs: r.IDs, Options: r.Options}
		if dr.Count == 0 && len(dr.DeviceIDs) == 0 {
			dr.Count = -1 // neither count nor device_ids: all, as compose does
		}
		if len(r.Capabilities) > 0 {
			dr.Capabilities = [][]string{r.Capabilities}
		}
		out = append(out, dr)
	}
	return out
}
