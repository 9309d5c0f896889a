package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/modelship/modelship/gpu"
	"github.com/modelship/modelship/internal/deploy"
)

// GPUs lists the GPUs of the Docker host, as its containers get them: a
// short-lived probe container of the release's image (which carries the
// modelship binary) with every GPU attached runs `modelship gpu --json`.
// The deployer's own machine (a CI runner, a Dagger container, a laptop
// reaching an ssh:// host) is never asked. A host that cannot give GPUs to
// containers is an error naming it.
func (t *Target) GPUs(ctx context.Context, img *deploy.ImageInfo) ([]gpu.Device, error) {
	bin, err := binaryOf(img)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	hc := &container.HostConfig{NetworkMode: "none"}
	hc.DeviceRequests = []container.DeviceRequest{{Driver: "nvidia", Count: -1, Capabilities: [][]string{{"gpu"}}}} // --gpus all
	created, err := t.cli.ContainerCreate(ctx, &container.Config{
		Image: img.ID, Entrypoint: []string{bin}, Cmd: []string{"gpu", "--json"},
		Labels: map[string]string{LabelRole: "gpu-probe"},
	}, hc, nil, nil, "")
	if err != nil {
		return nil, t.wrap(err, "creating the GPU probe container")
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = t.cli.ContainerRemove(rctx, created.ID, container.RemoveOptions{Force: true})
	}()
	if err := t.startContainer(ctx, created.ID); err != nil {
		if strings.Contains(err.Error(), "could not select device driver") {
			return nil, fmt.Errorf("docker host %s cannot give GPUs to containers (is the NVIDIA Container Toolkit installed?): %v", t.host, err)
		}
		return nil, t.wrap(err, "starting the GPU probe container")
	}
	waitC, errC := t.cli.ContainerWait(ctx, created.ID, container.WaitConditionNotRunning)
	var code int64
	select {
	case w := <-waitC:
		code = w.StatusCode
	case err := <-errC:
		return nil, t.wrap(err, "waiting for the GPU probe container")
	}
	rc, err := t.cli.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return nil, t.wrap(err, "reading the GPU probe's output")
	}
	defer rc.Close()
	var out, errOut bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errOut, rc); err != nil {
		return nil, t.wrap(err, "reading the GPU probe's output")
	}
	if code != 0 {
		return nil, fmt.Errorf("GPU probe on docker host %s (`modelship gpu --json` with every GPU attached) exited %d: %s", t.host, code, strings.TrimSpace(errOut.String()))
	}
	var rep gpu.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		return nil, fmt.Errorf("GPU probe on docker host %s: %v", t.host, err)
	}
	return rep.Devices, nil
}
