package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/modelship/modelship/bench"
	"github.com/modelship/modelship/internal/config"
	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/serving"
	"github.com/modelship/modelship/suite"
)

// Synthetic analysis traffic (canary.traffic: synthetic): this many
// workers, each sending its next prompt when the previous one is answered.
const syntheticWorkers = 2

// wireRollout puts environment env's canary and shadow rollout on a deploy
// (see rolloutSpecs), the validation suite's text assertions on the shadow
// step and, for canary.traffic synthetic, the deployer's Synthetic
// traffic.
func wireRollout(d *deploy.Deployer, req *deploy.Request, cfg *config.Config, env *config.Environment) error {
	req.Canary, req.Shadow = rolloutSpecs(env, req.Strategy)
	if req.Shadow != nil {
		st, err := validationSuite(cfg)
		if err != nil {
			return fmt.Errorf("the shadow step's checks: %v", err)
		}
		if st != nil {
			req.Shadow.Checks = st.TextChecks()
		}
	}
	if req.Canary == nil || req.Canary.Traffic != "synthetic" {
		return nil
	}
	prompts, desc, err := syntheticPrompts(cfg)
	if err != nil {
		return err
	}
	t := bench.Target{Model: req.ServedName, APIKey: req.Secrets[serving.EnvAPIKey]}
	d.Synthetic = syntheticTraffic(d, t, prompts, desc)
	return nil
}

// rolloutSpecs are the canary and shadow specs of a deploy to env with
// strategy (the environment's, or --strategy): the environment's canary
// block for strategy canary (config.DefaultCanary when it has none) or
// auto (the deployer runs it where two copies fit), and its shadow block,
// which runs before the canary's steps, with them. A --strategy that runs
// no canary (recreate, blue-green) runs neither.
func rolloutSpecs(env *config.Environment, strategy string) (*deploy.CanarySpec, *deploy.ShadowSpec) {
	var cs *deploy.CanarySpec
	switch c := env.Canary; {
	case strategy == deploy.Canary && c == nil:
		cs = canarySpec(config.DefaultCanary())
	case (strategy == deploy.Canary || strategy == deploy.Auto) && c != nil:
		cs = canarySpec(c)
	}
	var ss *deploy.ShadowSpec
	if s := env.Shadow; s != nil && cs != nil {
		ss = &deploy.ShadowSpec{Percent: s.Percent, Duration: time.Duration(s.Duration), MinAgreement: s.MinAgreement, MinSamples: s.MinSamples}
	}
	return cs, ss
}

// canarySpec is a canary block as the deployer takes it: each step's bake
// its own, else the block's.
func canarySpec(c *config.Canary) *deploy.CanarySpec {
	cs := &deploy.CanarySpec{
		Interval: time.Duration(c.Interval), StickyHeader: c.StickyHeader, Traffic: c.Traffic, Deadline: time.Duration(c.Deadline),
		Analysis: c.Analysis.Thresholds(),
	}
	for _, s := range c.Steps {
		bake := s.Bake
		if bake == 0 {
			bake = c.Bake
		}
		cs.Steps = append(cs.Steps, deploy.CanaryStep{Percent: s.Percent, Bake: time.Duration(bake), Pause: s.Pause})
	}
	return cs
}

// syntheticPrompts are what synthetic analysis traffic sends: the
// benchmark's prompts (suites.benchmark-prompts), else the validation
// suite's requests, else generated prompts (64 tokens in, 32 out). desc
// says which.
func syntheticPrompts(cfg *config.Config) (prompts []bench.Prompt, desc string, err error) {
	if f := cfg.Suites.BenchmarkPrompts; f != "" {
		p, err := bench.LoadPrompts(cfg.Rel(f))
		if err != nil {
			return nil, "", fmt.Errorf("synthetic canary traffic: suites.benchmark-prompts: %v", err)
		}
		return p, f, nil
	}
	st, err := validationSuite(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("synthetic canary traffic: %v", err)
	}
	if st != nil {
		for _, c := range st.Cases {
			p := bench.Prompt{Text: c.Prompt, MaxTokens: c.MaxTokens}
			for _, m := range c.Messages {
				p.Messages = append(p.Messages, bench.Message{Role: m.Role, Content: m.Content})
			}
			prompts = append(prompts, p)
		}
		return prompts, cfg.Suites.Validation, nil
	}
	p, err := bench.Synthetic(32, 64, 32, 1)
	return p, "generated prompts (64 tokens in, 32 out)", err
}

// validationSuite is the file's suites.validation, loaded; nil when it
// names none.
func validationSuite(cfg *config.Config) (*suite.Suite, error) {
	f := cfg.Suites.Validation
	if f == "" {
		return nil, nil
	}
	st, err := suite.Load(cfg.Rel(f))
	if err != nil {
		return nil, fmt.Errorf("suites.validation: %v", err)
	}
	return st, nil
}

// syntheticTraffic is the deployer's Synthetic: the prompts sent, in turn,
// to the endpoint at url from syntheticWorkers workers (bench's load
// generator) until stop, which waits for them and says how many requests
// were sent. Its two lines go to the deployer's progress output.
func syntheticTraffic(d *deploy.Deployer, t bench.Target, prompts []bench.Prompt, desc string) func(ctx context.Context, url string) func() {
	return func(ctx context.Context, url string) func() {
		t.Endpoint = url
		ctx, cancel := context.WithCancel(ctx)
		// No request count: it runs until stop (or a day, a bound that no
		// canary step's deadline reaches).
		results, err := bench.Attack(ctx, t, prompts, bench.Load{Mode: bench.Concurrency, Concurrency: syntheticWorkers, Duration: 24 * time.Hour}, nil)
		if err != nil {
			cancel()
			fmt.Fprintf(d.Out, "synthetic traffic to %s not started: %v\n", redactURL(url), err)
			return func() {}
		}
		fmt.Fprintf(d.Out, "synthetic traffic started: %d prompts of %s to %s from %d workers\n", len(prompts), desc, redactURL(url), syntheticWorkers)
		done := make(chan [2]int, 1)
		go func() {
			var n, failed int
			for r := range results {
				n++
				if !r.OK() {
					failed++
				}
			}
			done <- [2]int{n, failed}
		}()
		var once sync.Once
		return func() {
			once.Do(func() {
				cancel()
				c := <-done
				fmt.Fprintf(d.Out, "synthetic traffic stopped: %d requests sent, %d of them failed (those in flight at the stop not counted)\n", c[0], c[1])
			})
		}
	}
}
