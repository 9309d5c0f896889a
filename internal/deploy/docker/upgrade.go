package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/modelship/modelship/internal/deploy"
)

// UpgradeRouter keeps the gateway on the modelship binary of the release
// that went live: when live's binary differs from the one the gateway
// runs, it is copied over the gateway's binary (at the same path, so a
// restarted gateway runs it too) and the gateway is upgraded in place
// (`modelship gateway upgrade`): the new process takes the public port
// over, none of its connections is refused. A gateway too old to be
// upgraded in place keeps its binary; the log says so.
func (t *Target) UpgradeRouter(ctx context.Context, env string, live *deploy.Instance) error {
	st, err := t.GatewayState(ctx, env)
	if err != nil {
		return err
	}
	rel, err := t.cli.ContainerInspect(ctx, live.ID)
	if err != nil {
		return t.wrap(err, "inspecting release "+live.Name)
	}
	relBin, err := binaryOf(&deploy.ImageInfo{Ref: live.Name, Labels: rel.Config.Labels, Entrypoint: rel.Config.Entrypoint})
	if err != nil {
		return err
	}
	want, bin, err := t.binarySum(ctx, live.ID, rel.Image, relBin)
	if err != nil {
		return err
	}
	if want == st.BinarySHA256 {
		return nil
	}
	if st.BinarySHA256 == "" {
		t.logf("the gateway of %s runs a modelship too old to be upgraded in place: it keeps its binary (remove the container %s between deploys to recreate it; clients see that)", env, gatewayName(env))
		return nil
	}
	gw, err := t.cli.ContainerInspect(ctx, gatewayName(env))
	if err != nil {
		return t.wrap(err, "inspecting the gateway")
	}
	gwBin := gw.Config.Labels[LabelBinary]
	if gwBin == "" {
		return fmt.Errorf("the gateway %s has no label %s: cannot tell where its binary is", gatewayName(env), LabelBinary)
	}
	if bin == nil {
		if bin, err = t.readFile(ctx, live.ID, relBin); err != nil {
			return err
		}
	}
	if err := t.writeFile(ctx, gw.ID, gwBin, bin); err != nil {
		return err
	}
	t0 := time.Now()
	out, err := t.gatewayExec(ctx, env, "upgrade", "--binary", gwBin)
	if err != nil {
		return fmt.Errorf("upgrading the gateway of %s in place: %w (it keeps serving)", env, err)
	}
	var res struct {
		PID int `json:"pid"`
	}
	json.Unmarshal(out, &res)
	t.logf("gateway of %s upgraded in place to release %s's modelship binary (sha256 %.12s, was %.12s) in %s: new process %d took the port over, no connection refused",
		env, live.Release, want, st.BinarySHA256, time.Since(t0).Round(time.Millisecond), res.PID)
	return nil
}

// binarySum is the sha256 (hex) of file in container ctr, made from image:
// read once per image and file (an image's files do not change), so bin,
// the file itself, is nil when the sum was known.
func (t *Target) binarySum(ctx context.Context, ctr, image, file string) (sum string, bin []byte, err error) {
	key := image + ":" + file
	if s, ok := t.binSums.Load(key); ok {
		return s.(string), nil, nil
	}
	if bin, err = t.readFile(ctx, ctr, file); err != nil {
		return "", nil, err
	}
	h := sha256.Sum256(bin)
	sum = hex.EncodeToString(h[:])
	t.binSums.Store(key, sum)
	return sum, bin, nil
}

// readFile reads one file of a container.
func (t *Target) readFile(ctx context.Context, ctr, file string) ([]byte, error) {
	rc, _, err := t.cli.CopyFromContainer(ctx, ctr, file)
	if err != nil {
		return nil, t.wrap(err, "reading "+file+" of "+ctr)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("reading %s of %s: %w", file, ctr, err)
		}
		if h.Typeflag == tar.TypeReg {
			return io.ReadAll(tr)
		}
	}
}

// writeFile puts data at file (mode 0755) in a container, replacing what
// is there (a running binary too: the engine unlinks it first).
func (t *Target) writeFile(ctx context.Context, ctr, file string, data []byte) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: path.Base(file), Mode: 0o755, Size: int64(len(data)), ModTime: time.Now(), Typeflag: tar.TypeReg})
	tw.Write(data)
	if err := tw.Close(); err != nil {
		return err
	}
	if err := t.cli.CopyToContainer(ctx, ctr, path.Dir(file), &buf, container.CopyToContainerOptions{}); err != nil {
		return t.wrap(err, "writing "+file+" into "+ctr)
	}
	return nil
}
