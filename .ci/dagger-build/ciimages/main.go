// Command ciimages builds, with a running Dagger engine, the images the
// project's CI needs offline (nothing can be pulled here):
//
//   - debian:bookworm-slim: an mmdebstrap minbase rootfs, published to the
//     local registry the engine mirrors docker.io from;
//   - golang:TAG: the same with gcc, git and the host's Go toolchain
//     (statically linked) at /usr/local/go, published likewise;
//   - the Go SDK runtime image: golang:TAG plus dagger's codegen at
//     /usr/local/bin/codegen, exported as an OCI layout into the engine's
//     builtin content dir; its manifest digest is written to go-sdk.digest
//     there (the engine reads it from DAGGER_GO_SDK_MANIFEST_DIGEST).
//
// It is run by .ci/deps/dagger-engine.sh.
package main

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"dagger.io/dagger"
)

func main() {
	var o options
	flag.StringVar(&o.debianRootfs, "debian-rootfs", "", "minbase rootfs `dir` for debian:bookworm-slim")
	flag.StringVar(&o.golangRootfs, "golang-rootfs", "", "rootfs `dir` with gcc and git for the golang image")
	flag.StringVar(&o.goroot, "goroot", "/usr/local/go", "host Go toolchain `dir` copied to /usr/local/go")
	flag.StringVar(&o.golangTag, "golang-tag", "", "`tag` of the golang image, e.g. 1.26-bookworm")
	flag.StringVar(&o.codegen, "codegen", "", "dagger codegen `binary` for the Go SDK runtime image")
	flag.StringVar(&o.registry, "registry", "127.0.0.1:5000", "local registry `host:port`")
	flag.StringVar(&o.content, "content", "", "engine builtin content `dir` (OCI layout)")
	flag.Parse()
	for name, v := range map[string]string{"-debian-rootfs": o.debianRootfs, "-golang-rootfs": o.golangRootfs, "-golang-tag": o.golangTag, "-codegen": o.codegen, "-content": o.content} {
		if v == "" {
			fmt.Fprintf(os.Stderr, "ciimages: %s is required\n", name)
			os.Exit(2)
		}
	}
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintf(os.Stderr, "ciimages: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	debianRootfs, golangRootfs, goroot, golangTag, codegen, registry, content string
}

func run(ctx context.Context, o options) error {
	start := time.Now()
	c, err := dagger.Connect(ctx, dagger.WithLogOutput(os.Stderr))
	if err != nil {
		return fmt.Errorf("connect to engine: %w", err)
	}
	defer c.Close()

	debian := c.Container().WithRootfs(c.Host().Directory(o.debianRootfs, dagger.HostDirectoryOpts{Exclude: []string{".done"}})).
		WithEnvVariable("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	ref, err := debian.Publish(ctx, o.registry+"/library/debian:bookworm-slim")
	if err != nil {
		return fmt.Errorf("publish debian: %w", err)
	}
	fmt.Fprintf(os.Stderr, "ciimages: published %s\n", ref)

	golang := c.Container().WithRootfs(c.Host().Directory(o.golangRootfs, dagger.HostDirectoryOpts{Exclude: []string{".done"}})).
		WithDirectory("/usr/local/go", c.Host().Directory(o.goroot)).
		WithEnvVariable("PATH", "/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").
		WithEnvVariable("GOPATH", "/go").
		WithEnvVariable("GOTOOLCHAIN", "local").
		WithExec([]string{"mkdir", "-p", "/go/bin", "/go/pkg/mod", "/root/.cache/go-build"}).
		WithExec([]string{"go", "version"}).
		WithWorkdir("/go")
	ref, err = golang.Publish(ctx, o.registry+"/library/golang:"+o.golangTag)
	if err != nil {
		return fmt.Errorf("publish golang: %w", err)
	}
	fmt.Fprintf(os.Stderr, "ciimages: published %s\n", ref)

	sdk := golang.
		WithFile("/usr/local/bin/codegen", c.Host().File(o.codegen), dagger.ContainerWithFileOpts{Permissions: 0o755}).
		WithEnvVariable("GOTOOLCHAIN", "auto")
	tarball := filepath.Join(o.content, ".go-sdk.tar")
	if _, err := sdk.Export(ctx, tarball, dagger.ContainerExportOpts{MediaTypes: dagger.ImageMediaTypesOcimediaTypes}); err != nil {
		return fmt.Errorf("export go sdk image: %w", err)
	}
	defer os.Remove(tarball)
	digest, err := untarLayout(tarball, o.content)
	if err != nil {
		return fmt.Errorf("go sdk image: %w", err)
	}
	if err := os.WriteFile(filepath.Join(o.content, "go-sdk.digest"), []byte(digest+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "ciimages: go sdk runtime image %s in %s (%s)\n", digest, o.content, time.Since(start).Round(time.Second))
	return nil
}

// untarLayout extracts the OCI layout in tarball into dir (blobs and
// index.json) and returns the digest of the manifest index.json lists.
func untarLayout(tarball, dir string) (string, error) {
	f, err := os.Open(tarball)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var index []byte
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("read %s: %w", tarball, err)
		}
		name := filepath.Clean(h.Name)
		if h.Typeflag != tar.TypeReg || strings.HasPrefix(name, "..") || filepath.IsAbs(name) {
			continue
		}
		if name == "index.json" {
			if index, err = io.ReadAll(tr); err != nil {
				return "", err
			}
		}
		dst := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return "", err
		}
		out, err := os.Create(dst)
		if err != nil {
			return "", err
		}
		if name == "index.json" {
			_, err = out.Write(index)
		} else {
			_, err = io.Copy(out, tr)
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", err
		}
	}
	var idx struct {
		Manifests []struct {
			Digest    string `json:"digest"`
			MediaType string `json:"mediaType"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(index, &idx); err != nil {
		return "", fmt.Errorf("index.json in %s: %w", tarball, err)
	}
	if len(idx.Manifests) != 1 {
		return "", fmt.Errorf("index.json in %s lists %d manifests, want 1", tarball, len(idx.Manifests))
	}
	return idx.Manifests[0].Digest, nil
}
