package waitready

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestReadyAfterSomeChecks(t *testing.T) {
	var log bytes.Buffer
	n := 0
	err := Wait(context.Background(), func(context.Context) error {
		if n++; n < 4 {
			return errors.New("GET /v1/models: connection refused")
		}
		return nil
	}, Options{What: "http://model:8000", Budget: time.Minute, Poll: time.Millisecond, Say: time.Nanosecond, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("checked %d times, want 4 (until the check passed)", n)
	}
	// A person watching sees why it is not ready yet, then that it is.
	out := log.String()
	for _, want := range []string{"waiting for model service http://model:8000", "connection refused", "model service http://model:8000 ready after"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestPastTheBudgetSaysTheLastReason(t *testing.T) {
	err := Wait(context.Background(), func(context.Context) error {
		return errors.New("models: current not listed")
	}, Options{What: "http://model:8000", Budget: 20 * time.Millisecond, Poll: time.Millisecond})
	if !IsTimeout(err) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	for _, want := range []string{"not ready after", "budget 20ms", "models: current not listed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestRefusesNoBudget(t *testing.T) {
	err := Wait(context.Background(), func(context.Context) error { return nil }, Options{What: "x"})
	if err == nil || !strings.Contains(err.Error(), "budget") {
		t.Errorf("err = %v, want a refusal naming the budget", err)
	}
}

func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	err := Wait(ctx, func(context.Context) error { cancel(); return errors.New("no") }, Options{What: "x", Budget: time.Hour})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}
