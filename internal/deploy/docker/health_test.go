package docker

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
)

// The serving image's modelship.healthcheck label becomes the release
// container's health check: the command as Docker runs it, every 10s, 5s
// per probe, 3 retries, failures ignored while the weights load.
func TestHealthcheck(t *testing.T) {
	const image = `["CMD","/usr/local/bin/modelship","smoke","--endpoint","http://127.0.0.1:8000","--timeout","20s"]`
	budget := 90 * time.Second
	for _, c := range []struct {
		name  string
		label *string
		want  *container.HealthConfig
		err   string
	}{
		{name: "the serving image's label", label: ptr(image), want: &container.HealthConfig{
			Test:     []string{"CMD", "/usr/local/bin/modelship", "smoke", "--endpoint", "http://127.0.0.1:8000", "--timeout", "20s"},
			Interval: 10 * time.Second, Timeout: 5 * time.Second, StartPeriod: budget, Retries: 3,
		}},
		{name: "bare exec array gets CMD", label: ptr(`["/bin/check","--fast"]`), want: &container.HealthConfig{
			Test: []string{"CMD", "/bin/check", "--fast"}, Interval: 10 * time.Second, Timeout: 5 * time.Second, StartPeriod: budget, Retries: 3,
		}},
		{name: "shell form", label: ptr(`["CMD-SHELL","curl -fsS localhost:8000/health"]`), want: &container.HealthConfig{
			Test: []string{"CMD-SHELL", "curl -fsS localhost:8000/health"}, Interval: 10 * time.Second, Timeout: 5 * time.Second, StartPeriod: budget, Retries: 3,
		}},
		{name: "NONE disables", label: ptr(`["NONE"]`), want: &container.HealthConfig{Test: []string{"NONE"}}},
		{name: "no label", label: nil, want: nil},
		{name: "blank label", label: ptr("  "), want: nil},
		{name: "not JSON", label: ptr(`CMD modelship smoke`), err: "label modelship.healthcheck \"CMD modelship smoke\": invalid character"},
		{name: "JSON object", label: ptr(`{"cmd":"x"}`), err: "expected a JSON array of strings"},
		{name: "numbers", label: ptr(`["CMD", 1]`), err: "expected a JSON array of strings"},
		{name: "empty array", label: ptr(`[]`), err: "label modelship.healthcheck is an empty array"},
		{name: "CMD alone", label: ptr(`["CMD"]`), err: "names no command after CMD"},
		{name: "CMD with an empty program", label: ptr(`["CMD",""]`), err: "names no command after CMD"},
		{name: "NONE with a command", label: ptr(`["NONE","x"]`), err: "NONE takes no command"},
		{name: "CMD-SHELL with two strings", label: ptr(`["CMD-SHELL","a","b"]`), err: "CMD-SHELL takes one shell command string, got 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			labels := map[string]string{"org.opencontainers.image.source": "https://example.com/repo"}
			if c.label != nil {
				labels[LabelHealthcheck] = *c.label
			}
			got, err := Healthcheck(labels, budget)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func ptr(s string) *string { return &s }

// Whatever the label holds, Healthcheck either errors or returns a check
// Docker accepts: a CMD/CMD-SHELL command with the fixed timings, or NONE.
func FuzzHealthcheck(f *testing.F) {
	for _, s := range []string{
		`["CMD","/usr/local/bin/modelship","smoke","--endpoint","http://127.0.0.1:8000","--timeout","20s"]`,
		`["CMD-SHELL","true"]`, `["NONE"]`, `[]`, `["CMD"]`, `["x"]`, `{}`, `null`, `"CMD"`, `[null]`,
	} {
		f.Add(s, int64(time.Minute))
	}
	f.Fuzz(func(t *testing.T, label string, budget int64) {
		hc, err := Healthcheck(map[string]string{LabelHealthcheck: label}, time.Duration(budget))
		if err != nil {
			if !strings.Contains(err.Error(), LabelHealthcheck) {
				t.Fatalf("error does not name the label: %v", err)
			}
			return
		}
		if hc == nil {
			if strings.TrimSpace(label) != "" {
				t.Fatalf("label %q gave no check and no error", label)
			}
			return
		}
		switch hc.Test[0] {
		case "NONE":
			if len(hc.Test) != 1 {
				t.Fatalf("NONE with a command: %q", hc.Test)
			}
		case "CMD", "CMD-SHELL":
			if len(hc.Test) < 2 || strings.TrimSpace(hc.Test[1]) == "" {
				t.Fatalf("no command: %q", hc.Test)
			}
			if hc.Interval != HealthInterval || hc.Timeout != HealthTimeout || hc.Retries != HealthRetries || hc.StartPeriod < 0 {
				t.Fatalf("timings %+v", hc)
			}
		default:
			t.Fatalf("test %q starts with neither CMD, CMD-SHELL nor NONE", hc.Test)
		}
		if _, err := json.Marshal(hc); err != nil {
			t.Fatal(err)
		}
	})
}
