package deploy

import (
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Outcome is how a release ended.
type Outcome string

// Outcomes. A release is InProgress until its deploy ends; Live when it was
// verified and took the traffic; Failed when it never took traffic or was
// rolled back; Interrupted when the deploy was cancelled; Superseded is not
// stored, History reports Live releases that no longer serve that way.
const (
	InProgress  Outcome = "in-progress"
	Live        Outcome = "live"
	Failed      Outcome = "failed"
	Interrupted Outcome = "interrupted"
	Superseded  Outcome = "superseded"
	// Abandoned: its deployer was gone (killed, lock lost) before the
	// deploy finished; the next deploy removed it.
	Abandoned Outcome = "abandoned"
)

// Release is one deploy of an image to an environment, as the target records
// it. Everything but Outcome, Reason, Finished and Serving is fixed when the
// release starts.
type Release struct {
	ID          string    `json:"id"`
	Env         string    `json:"env"`
	Image       string    `json:"image"`
	ImageID     string    `json:"image_id"` // the image's content digest (sha256:...)
	ModelDigest string    `json:"model_digest,omitempty"`
	GitSHA      string    `json:"git_sha,omitempty"`
	DeployedBy  string    `json:"deployed_by"`
	DeployedAt  time.Time `json:"deployed_at"`
	Strategy    string    `json:"strategy"`
	Previous    string    `json:"previous,omitempty"` // release serving before this one
	GPUs        []string  `json:"gpus,omitempty"`
	// ReadyAfter is how long the release took to become ready.
	ReadyAfter time.Duration `json:"ready_after_ns,omitempty"`

	Outcome  Outcome   `json:"outcome"`
	Reason   string    `json:"reason,omitempty"`
	Finished time.Time `json:"finished,omitzero"`
	// Serving is true for the release the environment's router sends
	// traffic to now (filled by History, not stored).
	Serving bool `json:"serving"`
}

// Labels are the release's fields as key/value labels, under prefix
// "modelship." (what the Docker target stores on containers).
func (r *Release) Labels() map[string]string {
	l := map[string]string{
		LabelEnv:         r.Env,
		LabelRelease:     r.ID,
		LabelImage:       r.Image,
		LabelImageID:     r.ImageID,
		LabelModelDigest: r.ModelDigest,
		LabelGitSHA:      r.GitSHA,
		LabelDeployedBy:  r.DeployedBy,
		LabelDeployedAt:  r.DeployedAt.UTC().Format(time.RFC3339Nano),
		LabelStrategy:    r.Strategy,
		LabelPrevious:    r.Previous,
		LabelOutcome:     string(r.Outcome),
		LabelReason:      r.Reason,
	}
	if len(r.GPUs) > 0 {
		l[LabelGPUs] = joinComma(r.GPUs)
	}
	if r.ReadyAfter > 0 {
		l[LabelReadyAfter] = strconv.FormatFloat(r.ReadyAfter.Seconds(), 'f', 3, 64)
	}
	if !r.Finished.IsZero() {
		l[LabelFinished] = r.Finished.UTC().Format(time.RFC3339Nano)
	}
	for k, v := range l {
		if v == "" {
			delete(l, k)
		}
	}
	return l
}

// Label keys.
const (
	LabelEnv         = "modelship.env"
	LabelRelease     = "modelship.release"
	LabelImage       = "modelship.image"
	LabelImageID     = "modelship.image-id"
	LabelModelDigest = "modelship.model-digest"
	LabelGitSHA      = "modelship.git-sha"
	LabelDeployedBy  = "modelship.deployed-by"
	LabelDeployedAt  = "modelship.deployed-at"
	LabelStrategy    = "modelship.strategy"
	LabelPrevious    = "modelship.previous"
	LabelGPUs        = "modelship.gpus"
	LabelReadyAfter  = "modelship.ready-after-s"
	LabelOutcome     = "modelship.outcome"
	LabelReason      = "modelship.reason"
	LabelFinished    = "modelship.finished"
)

// ReleaseFromLabels reads a release back from Labels' output; it fails when
// the release id or environment is missing or a time does not parse.
func ReleaseFromLabels(l map[string]string) (*Release, error) {
	r := &Release{
		Env: l[LabelEnv], ID: l[LabelRelease], Image: l[LabelImage], ImageID: l[LabelImageID],
		ModelDigest: l[LabelModelDigest], GitSHA: l[LabelGitSHA], DeployedBy: l[LabelDeployedBy],
		Strategy: l[LabelStrategy], Previous: l[LabelPrevious], Outcome: Outcome(l[LabelOutcome]),
		Reason: l[LabelReason],
	}
	if r.ID == "" || r.Env == "" {
		return nil, fmt.Errorf("labels %s and %s are required", LabelRelease, LabelEnv)
	}
	if r.Outcome == "" {
		r.Outcome = InProgress
	}
	var err error
	if r.DeployedAt, err = time.Parse(time.RFC3339Nano, l[LabelDeployedAt]); err != nil {
		return nil, fmt.Errorf("label %s: expected an RFC 3339 time, got %q", LabelDeployedAt, l[LabelDeployedAt])
	}
	if v := l[LabelFinished]; v != "" {
		if r.Finished, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return nil, fmt.Errorf("label %s: expected an RFC 3339 time, got %q", LabelFinished, v)
		}
	}
	if v := l[LabelReadyAfter]; v != "" {
		s, err := strconv.ParseFloat(v, 64)
		if err != nil || s < 0 {
			return nil, fmt.Errorf("label %s: expected seconds, got %q", LabelReadyAfter, v)
		}
		r.ReadyAfter = time.Duration(s * float64(time.Second))
	}
	if v := l[LabelGPUs]; v != "" {
		r.GPUs = splitComma(v)
	}
	return r, nil
}

// NewReleaseID returns a sortable, readable id: UTC time to the second and
// four hex digits, e.g. 20250102-150405-3fa9.
func NewReleaseID(now time.Time, rand uint16) string {
	return fmt.Sprintf("%s-%04x", now.UTC().Format("20060102-150405"), rand)
}

// SortReleases orders releases oldest first.
func SortReleases(rs []*Release) {
	sort.SliceStable(rs, func(i, j int) bool {
		if !rs[i].DeployedAt.Equal(rs[j].DeployedAt) {
			return rs[i].DeployedAt.Before(rs[j].DeployedAt)
		}
		return rs[i].ID < rs[j].ID
	})
}

func joinComma(v []string) string {
	s := ""
	for i, x := range v {
		if i > 0 {
			s += ","
		}
		s += x
	}
	return s
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}
