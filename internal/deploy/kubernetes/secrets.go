package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/modelship/modelship/serving"
)

// servingSecret writes the serving container's secrets (the API key, the
// Hugging Face token) and the pods' admin token into the Secret
// NAME-serving, which the pods read through secretKeyRef, and names them
// in w. The Secret is replaced as a whole, so a key the config no longer
// gives is gone; running pods keep the values they started with. The
// admin token (serving.EnvAdminToken: the deployer's key to each pod's
// rollout endpoint) is made once and kept, so the serving release's pods
// and a new release's share it.
func (t *Target) servingSecret(ctx context.Context, w *Workload, secrets map[string]string) error {
	name := ServingSecretName(t.opt.Name)
	token, err := t.keptAdminToken(ctx, name)
	if err != nil {
		return err
	}
	data := map[string][]byte{serving.EnvAdminToken: []byte(token)}
	for k, v := range secrets {
		data[k] = []byte(v)
	}
	if err := t.writeSecret(ctx, name, corev1.SecretTypeOpaque, data); err != nil {
		return t.wrap(err, "writing the serving secret "+name)
	}
	w.SecretName, w.SecretEnv = name, slices.Sorted(maps.Keys(data))
	return nil
}

// keptAdminToken is the admin token Secret name holds, or a new random
// one when it holds none.
func (t *Target) keptAdminToken(ctx context.Context, name string) (string, error) {
	sec, err := t.cs.CoreV1().Secrets(t.opt.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return "", t.wrap(err, "reading the serving secret "+name)
	}
	if err == nil {
		if tok := string(sec.Data[serving.EnvAdminToken]); tok != "" {
			return tok, nil
		}
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// writeSecret creates or replaces the Secret name.
func (t *Target) writeSecret(ctx context.Context, name string, typ corev1.SecretType, data map[string][]byte) error {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: t.opt.Namespace,
			Labels: map[string]string{LabelName: "modelship", LabelInstance: t.opt.Name, LabelManagedBy: "modelship"}},
		Type: typ, Data: data,
	}
	secrets := t.cs.CoreV1().Secrets(t.opt.Namespace)
	_, err := secrets.Update(ctx, sec, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		_, err = secrets.Create(ctx, sec, metav1.CreateOptions{})
	}
	return err
}

// pullSecret creates or updates the image pull secret NAME-registry with
// the credentials for w's image, when there are some, and names it in w.
// Only that registry's login goes into the cluster.
func (t *Target) pullSecret(ctx context.Context, w *Workload) error {
	cred, ok := t.opt.Credentials.For(w.Image)
	if !ok {
		return nil
	}
	name := t.opt.Name + "-registry"
	data := map[string][]byte{corev1.DockerConfigJsonKey: cred.DockerConfigJSON()}
	if err := t.writeSecret(ctx, name, corev1.SecretTypeDockerConfigJson, data); err != nil {
		return t.wrap(err, "writing the image pull secret "+name+" (registry "+cred.Registry+")")
	}
	w.PullSecret = name
	return nil
}
