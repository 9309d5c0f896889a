// Package progress draws a one-line progress bar on a terminal: amount done
// out of a total, rate and ETA. It draws nothing during the first second
// (fast work stays quiet), redraws at most 10 times a second, and draws
// nothing at all when its writer is not a terminal (logs and pipes stay
// clean). A Bar is safe for concurrent Add/Set calls.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// Unit says how amounts are printed.
type Unit int

const (
	// Bytes prints amounts as KiB/MiB/GiB and rates as MB/s-style IEC units.
	Bytes Unit = iota
	// Count prints plain numbers ("12/100 requests" with the label).
	Count
)

const (
	// Delay is how long a bar stays silent before drawing.
	Delay = time.Second
	// Interval is the minimum time between redraws.
	Interval = 100 * time.Millisecond
	width    = 24
)

// Bar is one progress line.
type Bar struct {
	w     io.Writer
	label string
	total atomic.Int64
	done  atomic.Int64
	unit  Unit

	enabled bool
	now     func() time.Time
	start   time.Time

	mu    sync.Mutex
	drawn bool // something is on the line
	stop  chan struct{}
	wg    sync.WaitGroup
	fin   bool
}

// New returns a bar that reports to w (normally os.Stderr) if w is a
// terminal, and is silent otherwise. total may be 0 if unknown (no ETA).
func New(w io.Writer, label string, total int64, unit Unit) *Bar {
	return newBar(w, label, total, unit, IsTerminal(w), time.Now)
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func newBar(w io.Writer, label string, total int64, unit Unit, enabled bool, now func() time.Time) *Bar {
	b := &Bar{w: w, label: label, unit: unit, enabled: enabled, now: now, start: now(), stop: make(chan struct{})}
	b.total.Store(total)
	if enabled {
		b.wg.Add(1)
		go b.loop()
	}
	return b
}

func (b *Bar) loop() {
	defer b.wg.Done()
	t := time.NewTicker(Interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.tick()
		}
	}
}

// tick redraws if the bar has been running for Delay.
func (b *Bar) tick() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fin || b.now().Sub(b.start) < Delay {
		return
	}
	b.draw()
}

// Add records n more units done.
func (b *Bar) Add(n int64) { b.done.Add(n) }

// Set records the amount done so far.
func (b *Bar) Set(n int64) { b.done.Store(n) }

// SetTotal changes the total (e.g. once it becomes known).
func (b *Bar) SetTotal(n int64) { b.total.Store(n) }

// Done stops the bar. If it drew anything, it draws the final state and
// ends the line so later output starts on a fresh line.
func (b *Bar) Done() {
	b.mu.Lock()
	if b.fin {
		b.mu.Unlock()
		return
	}
	b.fin = true
	if b.enabled {
		close(b.stop)
	}
	if b.drawn {
		b.draw()
		fmt.Fprint(b.w, "\n")
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// draw writes the line; b.mu is held.
func (b *Bar) draw() {
	fmt.Fprint(b.w, "\r"+b.line()+"\x1b[K")
	b.drawn = true
}

// line renders the bar's current state.
func (b *Bar) line() string {
	done, total := b.done.Load(), b.total.Load()
	elapsed := b.now().Sub(b.start)
	var sb strings.Builder
	sb.WriteString(b.label)
	if total > 0 {
		frac := float64(done) / float64(total)
		frac = min(max(frac, 0), 1)
		fill := int(frac * width)
		sb.WriteString(" [")
		sb.WriteString(strings.Repeat("=", fill))
		if fill < width {
			sb.WriteString(">")
			sb.WriteString(strings.Repeat(" ", width-fill-1))
		}
		fmt.Fprintf(&sb, "] %3.0f%% %s/%s", frac*100, b.amount(done), b.amount(total))
	} else {
		fmt.Fprintf(&sb, " %s", b.amount(done))
	}
	if secs := elapsed.Seconds(); secs > 0 && done > 0 {
		rate := float64(done) / secs
		fmt.Fprintf(&sb, "  %s", b.rate(rate))
		if total > done {
			eta := time.Duration(float64(total-done) / rate * float64(time.Second))
			fmt.Fprintf(&sb, "  ETA %s", FormatDuration(eta))
		}
	}
	return sb.String()
}

func (b *Bar) amount(n int64) string {
	if b.unit == Bytes {
		return FormatBytes(n)
	}
	return fmt.Sprint(n)
}

func (b *Bar) rate(r float64) string {
	if b.unit == Bytes {
		return FormatBytes(int64(r)) + "/s"
	}
	return fmt.Sprintf("%.1f/s", r)
}

// FormatBytes prints n with IEC units: "512 B", "1.5 KiB", "14.96 GiB".
func FormatBytes(n int64) string {
	const units = "KMGTPE"
	if n < 1024 && n > -1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	i := -1
	for (v >= 1024 || v <= -1024) && i < len(units)-1 {
		v /= 1024
		i++
	}
	switch {
	case v >= 100 || v <= -100:
		return fmt.Sprintf("%.0f %ciB", v, units[i])
	case v >= 10 || v <= -10:
		return fmt.Sprintf("%.1f %ciB", v, units[i])
	}
	return fmt.Sprintf("%.2f %ciB", v, units[i])
}

// FormatDuration prints d compactly: "45s", "3m05s", "2h10m".
func FormatDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	}
	return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
}
