package deploy

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestReleaseLabelsRoundTrip(t *testing.T) {
	r := &Release{ID: "20250102-150405-3fa9", Env: "production", Image: "reg/m:1", ImageID: "sha256:ab", ModelDigest: "sha256:cd",
		GitSHA: "0123", DeployedBy: "alice@h", DeployedAt: time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC), Strategy: BlueGreen,
		Previous: "20250101-000000-0000", GPUs: []string{"GPU-a", "GPU-b"}, ReadyAfter: 1500 * time.Millisecond,
		Outcome: Failed, Reason: "verify failed: missing 'Paris'", Finished: time.Date(2025, 1, 2, 15, 6, 0, 0, time.UTC)}
	got, err := ReleaseFromLabels(r.Labels())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, r)
	}
	for _, c := range []struct {
		labels map[string]string
		want   string
	}{
		{map[string]string{LabelEnv: "p"}, "modelship.release and modelship.env are required"},
		{map[string]string{LabelEnv: "p", LabelRelease: "r", LabelDeployedAt: "yesterday"}, `label modelship.deployed-at: expected an RFC 3339 time, got "yesterday"`},
		{map[string]string{LabelEnv: "p", LabelRelease: "r", LabelDeployedAt: "2025-01-02T15:04:05Z", LabelReadyAfter: "-1"}, "label modelship.ready-after-s: expected seconds"},
	} {
		if _, err := ReleaseFromLabels(c.labels); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.labels, err, c.want)
		}
	}
}

func FuzzReleaseFromLabels(f *testing.F) {
	f.Add("r1", "prod", "2025-01-02T15:04:05Z", "1.5", "GPU-a,GPU-b", "")
	f.Add("r", "p", "2025-01-02T15:04:05.123456789+02:00", "", ",,", "2025-01-02T15:04:05Z")
	f.Fuzz(func(t *testing.T, id, env, at, ready, gpus, finished string) {
		l := map[string]string{LabelRelease: id, LabelEnv: env, LabelDeployedAt: at, LabelReadyAfter: ready, LabelGPUs: gpus, LabelFinished: finished}
		r, err := ReleaseFromLabels(l)
		if err != nil {
			return
		}
		again, err := ReleaseFromLabels(r.Labels())
		if err != nil {
			t.Fatalf("labels of a parsed release do not parse: %v", err)
		}
		if again.ID != r.ID || again.Env != r.Env || !again.DeployedAt.Equal(r.DeployedAt) || len(again.GPUs) != len(r.GPUs) {
			t.Fatalf("round trip changed the release: %+v → %+v", r, again)
		}
	})
}

func TestLoadBudget(t *testing.T) {
	if got := LoadBudget(0, 0); got != time.Minute {
		t.Errorf("empty model: %s", got)
	}
	if got := LoadBudget(16<<30, 0); got != 9*time.Minute {
		t.Errorf("16 GiB: %s, want 9m (60s + 16 × 30s)", got)
	}
	if got := LoadBudget(16<<30, 20*time.Minute); got != 20*time.Minute {
		t.Errorf("override: %s", got)
	}
}
