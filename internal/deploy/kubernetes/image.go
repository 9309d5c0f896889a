package kubernetes

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/modelship/modelship/internal/deploy"
)

// Image resolves ref against the images the nodes report: when a node
// holds it, ID is its content (manifest) digest and RepoDigest the
// repo@digest name the runtime knows it by (same repository preferred), so a
// rollback runs exactly the same content. An image no node holds yet is
// left for the kubelet to pull (ID empty). A bare "sha256:..." (a rollback
// by content) must be on a node.
func (t *Target) Image(ctx context.Context, ref string) (*deploy.ImageInfo, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" || strings.ContainsAny(ref, " \t\n") {
		return nil, fmt.Errorf("image reference %q is not valid: expected NAME[:TAG] or NAME@sha256:DIGEST", ref)
	}
	info := &deploy.ImageInfo{Ref: ref}
	byDigest := strings.HasPrefix(ref, "sha256:")
	nodes, err := t.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if apierrors.IsForbidden(err) {
		// Least privilege (see RBAC): no cluster-wide rights without GPU
		// accounting. The release records and the kubelet's pull serve.
		t.logf("image %s: nodes cannot be listed with these credentials (no cluster-wide rights); the kubelet pulls it where it is missing", ref)
		nodes, err = &corev1.NodeList{}, nil
	}
	if err != nil {
		return nil, t.wrap(err, "listing nodes")
	}
	want, repo := Normalize(ref), repoOf(Normalize(ref))
	for _, n := range nodes.Items {
		for _, img := range n.Status.Images {
			match := false
			for _, name := range img.Names {
				if name == want || (byDigest && strings.HasSuffix(name, "@"+ref)) {
					match = true
				}
			}
			if !match {
				continue
			}
			for _, name := range img.Names {
				i := strings.Index(name, "@sha256:")
				if i < 0 {
					continue
				}
				// Prefer a name in ref's repository.
				if info.RepoDigest == "" || (!byDigest && name[:i] == repo) {
					info.RepoDigest, info.ID = name, name[i+1:]
				}
			}
			if info.ID != "" {
				return info, nil
			}
		}
	}
	if byDigest {
		return t.recordedImage(ctx, ref)
	}
	if i := strings.Index(ref, "@sha256:"); i >= 0 {
		info.RepoDigest, info.ID = ref, ref[i+1:]
	}
	return info, nil
}

// recordedImage finds the content digest id in the release records: the
// release deployed it from a repository, and repo@id names exactly that
// content whatever the nodes report (a kubelet lists a newly pulled image
// only at its next status update, and at most 50 images per node).
func (t *Target) recordedImage(ctx context.Context, id string) (*deploy.ImageInfo, error) {
	sel := labels.SelectorFromSet(map[string]string{LabelInstance: t.opt.Name, LabelRole: "record"})
	list, err := t.cs.CoreV1().ConfigMaps(t.opt.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, t.wrap(err, "listing the release records")
	}
	for _, cm := range list.Items {
		r, err := deploy.ReleaseFromLabels(cm.Annotations)
		if err != nil || r.ImageID != id || r.Image == "" {
			continue
		}
		pinned := repoOf(Normalize(r.Image)) + "@" + id
		t.logf("image %s: on no node's reported list yet; release %s's record pins it as %s (pulled where it is missing)", id, r.ID, pinned)
		return &deploy.ImageInfo{Ref: id, ID: id, RepoDigest: pinned}, nil
	}
	return nil, fmt.Errorf("image %s is on no node of the cluster and in no release record of %s in namespace %s; roll back by reference (repo@sha256:...) instead", id, t.opt.Name, t.opt.Namespace)
}

// repoOf strips the tag or digest of a normalized name.
func repoOf(name string) string {
	if i := strings.Index(name, "@"); i >= 0 {
		return name[:i]
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		return name[:i]
	}
	return name
}

// Normalize is how the container runtime names an image: docker.io/ and
// library/ added, :latest when untagged.
func Normalize(ref string) string {
	name := ref
	first, _, found := strings.Cut(ref, "/")
	if !found || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		if !found {
			name = "library/" + name
		}
		name = "docker.io/" + name
	}
	last := name[strings.LastIndex(name, "/")+1:]
	if !strings.Contains(last, ":") && !strings.Contains(name, "@") {
		name += ":latest"
	}
	return name
}

// imageFor is what a release's container runs: the image's repository at
// the content digest the nodes reported (exactly what was deployed, even
// if the tag moves), else the reference as given.
func (t *Target) imageFor(ctx context.Context, r *deploy.Release) string {
	if strings.HasPrefix(r.ImageID, "sha256:") && !strings.Contains(r.Image, "@") {
		if info, err := t.Image(ctx, r.ImageID); err == nil && info.RepoDigest != "" &&
			repoOf(info.RepoDigest) == repoOf(Normalize(r.Image)) {
			return info.RepoDigest
		}
	}
	return r.Image
}
