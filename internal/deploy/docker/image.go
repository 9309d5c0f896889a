package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/image"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/registryauth"
)

// Image returns ref's details, pulling it when the engine lacks it.
func (t *Target) Image(ctx context.Context, ref string) (*deploy.ImageInfo, error) {
	if _, err := reference.ParseAnyReference(ref); err != nil || strings.TrimSpace(ref) == "" {
		return nil, fmt.Errorf("image reference %q is not valid: expected NAME[:TAG] or NAME@sha256:DIGEST", ref)
	}
	info := &deploy.ImageInfo{Ref: ref}
	ins, err := t.cli.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		if perr := t.pull(ctx, ref); perr != nil {
			return nil, fmt.Errorf("image %s is not on docker host %s and pulling it failed: %v", ref, t.host, perr)
		}
		info.Pulled = true
		ins, err = t.cli.ImageInspect(ctx, ref)
	}
	if err != nil {
		return nil, t.wrap(err, "inspecting image "+ref)
	}
	info.ID = ins.ID
	if len(ins.RepoDigests) > 0 {
		info.RepoDigest = ins.RepoDigests[0]
	}
	if ins.Config != nil {
		info.Labels = ins.Config.Labels
		info.Entrypoint = ins.Config.Entrypoint
		info.Cmd = ins.Config.Cmd
	}
	return info, nil
}

// pull pulls ref with the registry's credentials when there are some; a
// registry's refusal says which registry and whether credentials were sent.
func (t *Target) pull(ctx context.Context, ref string) error {
	var opt image.PullOptions
	cred, ok := t.opt.Credentials.For(ref)
	var with *registryauth.Credential
	if ok {
		opt.RegistryAuth, with = cred.Header(), &cred
	}
	return registryauth.Refused(ref, t.pullWith(ctx, ref, opt), with)
}

func (t *Target) pullWith(ctx context.Context, ref string, opt image.PullOptions) error {
	rc, err := t.cli.ImagePull(ctx, ref, opt)
	if err != nil {
		return t.wrap(err, "pulling "+ref)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}
