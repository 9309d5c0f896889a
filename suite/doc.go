// Package suite loads validation suites, runs them against any
// OpenAI-compatible endpoint and decides the validation gate's verdict.
// Package suite/report prints the result.
//
// # Files
//
// Load takes two formats, told apart by the first character of the file.
//
// The article's tests/validation_cases.json, unchanged: a JSON list of
//
//	{"name": "...", "messages": [{"role": "user", "content": "..."}],
//	 "max_tokens": 32, "expected_keywords": ["Paris"]}
//
// Each expected keyword must occur in the answer, case-insensitively (the
// article lower-cases both sides); a missing one is reported as the article
// prints it: "capital-of-france: missing 'Paris'". max_tokens defaults to 256.
//
// A YAML suite (testdata/suites/example.yaml is a complete one):
//
//	name: smoke                  # optional
//	pass-threshold: 90%          # or 0.9; default 100%: every case must pass
//	defaults:                    # request parameters of every case
//	  model: my-model            # default: --model, else GET /v1/models' first
//	  max-tokens: 64             # default 256
//	  temperature: 0             # default 0 (deterministic)
//	  seed: 1234                 # default 1234
//	cases:
//	  - name: capital            # required, unique
//	    description: free text
//	    messages:                # a chat completion ...
//	      - {role: system, content: Be brief.}
//	      - {role: user, content: What is the capital of France?}
//	    # prompt: "The capital of France is"   # ... or a plain completion
//	    max-tokens: 32           # model, max-tokens, temperature, seed override the defaults
//	    repeat: 5                # send it 5 times ...
//	    pass-rate: 80%           # ... at least 4 answers must pass (required with repeat)
//	    expect:                  # every assertion must hold for an answer to pass
//	      - icontains: paris
//
// Assertions, one `- KIND: VALUE` per list item:
//
//	contains: TEXT           the answer contains TEXT (case-sensitive)
//	icontains: TEXT          ... ignoring case
//	contains-all: [A, B]     contains every one (case-sensitive)
//	contains-any: [A, B]     contains at least one (case-sensitive)
//	not-contains: TEXT|[..]  contains none (case-sensitive)
//	regex: PATTERN           matches the Go RE2 pattern; (?i) ignores case
//	equals: TEXT             is TEXT, leading and trailing white space aside
//	starts-with: TEXT        starts with TEXT, leading white space aside
//	is-json: true            is one JSON value and nothing else (no ``` fences)
//	json-schema: SCHEMA      is JSON valid against SCHEMA (a YAML mapping or a
//	                         JSON string; draft 2020-12 unless $schema says)
//	finish-reason: REASON    the choice's finish_reason (stop, length, ...)
//	max-latency: 2s          the whole answer arrived within this
//	min-tokens: N            at least N completion tokens (usage.completion_tokens;
//	max-tokens: N            at most N;  words when the server sends no usage)
//
// Keys are strict: an unknown key or assertion, a regex that does not
// compile, a schema that is not valid, a case without a name or without
// messages/prompt, a duplicate name, an empty suite are errors naming the
// file, line and column (or case) — all of them, before any request is sent.
//
// # Running
//
// Run sends one request per case and repetition, Options.Concurrency at a
// time, through the maintained OpenAI Go SDK (github.com/openai/openai-go/v3)
// with its own retries switched off: the runner retries transport errors
// and 5xx only, with exponential backoff (or the server's Retry-After),
// never a 4xx, a malformed answer or a failed assertion. The SDK decodes
// leniently, so the runner also reads the raw body (through an SDK
// middleware) and fails a case, with the reason, when the server answered
// with something that is not an OpenAI response: not JSON, a wrong shape,
// an empty "choices", an error object, or nothing within the timeout.
//
// The verdict: Passed when at least pass-threshold of the cases passed;
// Failed when too many failed even if every case that could not run had
// passed; Inconclusive otherwise — the endpoint was unreachable after
// retries, or too few cases ran to decide. Verdict.ExitCode maps them to
// 0, 1 and 3.
package suite
