package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/testenv"
)

// derived builds an image FROM base with one more label: same model, same
// layers, its own content id, tagged once (so deleting it by id is the
// engine's plain delete) and removed when the test ends.
func derived(t *testing.T, base, name string) string {
	t.Helper()
	cli, _ := testenv.Docker(t)
	tag := fmt.Sprintf("modelship-test/prune-%s:%d", name, os.Getpid())
	df := fmt.Sprintf("FROM %s\nLABEL modelship.test-derived=%q\n", base, tag)
	var ctxTar bytes.Buffer
	tw := tar.NewWriter(&ctxTar)
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df))}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(df))
	tw.Close()
	resp, err := cli.ImageBuild(context.Background(), &ctxTar, build.ImageBuildOptions{Tags: []string{tag}, Remove: true, Version: build.BuilderV1})
	if err != nil {
		t.Fatalf("building %s: %v", tag, err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(out, []byte(`"error"`)) {
		t.Fatalf("building %s: %s", tag, out)
	}
	t.Cleanup(func() { cli.ImageRemove(context.Background(), tag, image.RemoveOptions{Force: true}) })
	return tag
}

// TestKeepReleases: with keep-releases 2, each deploy prunes the releases
// beyond the newest two: their records go, and their images too when no
// kept release (nor the gateway) uses them, so old images stop filling the
// disk; the serving release and the one to roll back to stay.
func TestKeepReleases(t *testing.T) {
	good, _ := images(t)
	cli, _ := testenv.Docker(t)
	x, y := derived(t, good.Tag, "x"), derived(t, good.Tag, "y")
	e := newEnv(t)
	ctx := context.Background()
	var res []*deploy.Result
	deployKeep2 := func(img string) {
		t.Helper()
		req := e.request(img)
		req.KeepReleases = 2
		r, err := e.d.Deploy(ctx, req)
		if err != nil {
			t.Fatalf("deploy %s: %v", img, err)
		}
		res = append(res, r)
	}
	id := func(i int) string { return res[i].Release.ID }
	imageThere := func(ref string) bool {
		t.Helper()
		_, err := cli.ImageInspect(ctx, ref)
		if err != nil && !cerrdefs.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}
	history := func() []*deploy.Release {
		t.Helper()
		h, err := deploy.History(ctx, e.target, e.name)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	imageID := func(ref string) string {
		t.Helper()
		ins, err := cli.ImageInspect(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		return ins.ID
	}
	xID, yID := imageID(x), imageID(y)

	deployKeep2(good.Tag) // r1: its image is also the gateway's
	deployKeep2(x)        // r2
	deployKeep2(y)        // r3: r1 pruned
	if h := history(); len(h) != 2 || h[0].ID != id(1) || h[1].ID != id(2) || !h[1].Serving || h[0].Outcome != deploy.Superseded {
		t.Fatalf("history after 3 deploys with keep-releases 2: %s", dump(h))
	}
	if _, err := cli.ContainerInspect(ctx, "modelship-"+e.name+"-"+id(0)+"-record"); !cerrdefs.IsNotFound(err) {
		t.Errorf("record of pruned release %s: %v, want it gone", id(0), err)
	}
	if !strings.Contains(e.log.String(), "pruned 1 old release: "+id(0)) {
		t.Errorf("the log does not say release %s was pruned:\n%s", id(0), e.log)
	}
	if !imageThere(good.Tag) {
		t.Errorf("image %s of pruned release %s was removed although the gateway runs it", good.Tag, id(0))
	}

	deployKeep2(x) // r4: r2 pruned, its image x stays (r4 runs it)
	if !imageThere(xID) {
		t.Errorf("image %s of pruned release %s was removed although kept release %s uses it", x, id(1), id(3))
	}
	deployKeep2(good.Tag) // r5: r3 pruned, its image y is used by nothing kept: removed
	if imageThere(yID) || imageThere(y) {
		t.Errorf("image %s of pruned release %s is still on the host; nothing kept uses it", y, id(2))
	}
	h := history()
	if len(h) != 2 || h[0].ID != id(3) || h[1].ID != id(4) || !h[1].Serving || h[0].Outcome != deploy.Superseded || h[0].ImageID != xID {
		t.Fatalf("history after 5 deploys with keep-releases 2: %s", dump(h))
	}
	for _, rel := range []string{id(0), id(1), id(2)} {
		if _, err := cli.ContainerInspect(ctx, "modelship-"+e.name+"-"+rel+"-record"); !cerrdefs.IsNotFound(err) {
			t.Errorf("record of pruned release %s: %v, want it gone", rel, err)
		}
	}
	// The previous release is still one rollback away, without a pull.
	rb, err := e.d.Rollback(ctx, deploy.RollbackRequest{Request: e.request("")})
	if err != nil {
		t.Fatalf("rollback after pruning: %v", err)
	}
	if rb.Release.ImageID != xID {
		t.Errorf("rollback deployed %s, want release %s's image %s", rb.Release.ImageID, id(3), xID)
	}
	e.serving(t, x)
}
