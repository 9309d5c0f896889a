package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func init() {
	register(command{name: "lock-hold", summary: "the Docker deploy lock's process (started by deploy): runs while its holder renews it", run: runLockHold})
}

const lockHoldUsage = `Usage: modelship lock-hold [--ttl 1m]

The process of a Docker environment's deploy lock container (modelship-ENV-lock),
started by modelship deploy: the lock is held while it runs. The deployer
renews it with SIGUSR1 every quarter of --ttl; without a renewal for --ttl it
exits and the next deploy may take the lock over. Not for use by hand.

Flags:
`

// runLockHold is the process of a Docker environment's lock container: the
// lock is held while it runs. Each SIGUSR1 (the deployer's renewal, sent
// through the Docker API) extends it by --ttl; without one for --ttl it
// exits, and the lock may be taken over. SIGTERM (the deployer releasing
// the lock, or docker stop) ends it at once.
func runLockHold(ctx context.Context, args []string, s stdio) int {
	fs := newFlagSet("lock-hold", s, lockHoldUsage)
	ttl := fs.Duration("ttl", time.Minute, "how long the lock lasts after the last renewal (SIGUSR1)")
	if _, code, ok := parseArgs(fs, args); !ok {
		return code
	}
	if *ttl <= 0 {
		return newUsageErr(s, "lock-hold", "")("--ttl: expected a positive duration, got %s", *ttl)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	timer := time.NewTimer(*ttl)
	defer timer.Stop()
	renewed := time.Now()
	for {
		select {
		case sig := <-sigs:
			if sig != syscall.SIGUSR1 {
				fmt.Fprintf(s.err, "lock released (%s)\n", sig)
				return exitOK
			}
			renewed = time.Now()
			timer.Reset(*ttl)
		case <-timer.C:
			fmt.Fprintf(s.err, "lease expired: no renewal since %s (ttl %s); the lock may be taken over\n", renewed.UTC().Format(time.RFC3339), *ttl)
			return exitOK
		case <-ctx.Done():
			return exitOK
		}
	}
}
