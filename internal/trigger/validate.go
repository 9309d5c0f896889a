package trigger

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Every value of an event becomes a workflow input, a command argument
// and an environment variable of the release, so each is checked against a
// strict pattern before the event is queued (and again before it starts):
// never an option ("-..."), a path escape, whitespace or shell syntax, and
// never empty where the release needs it.
var (
	namePart  = `[A-Za-z0-9_][A-Za-z0-9._-]*`
	hfRepoRE  = regexp.MustCompile(`^(` + namePart + `/)?` + namePart + `$`)
	mlNameRE  = regexp.MustCompile(`^` + namePart + `(/` + namePart + `)*$`)
	commitRE  = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)
	versionRE = regexp.MustCompile(`^[1-9][0-9]{0,18}$`)
	digestRE  = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// Bounds on names: the Hub's on each part of org/name, and one for MLflow
// registered model names.
const (
	maxHFPart = 96
	maxMLName = 200
)

// What each field must be, for the error that refuses it.
const (
	wantHFRepo  = "a Hugging Face repository org/name or name: letters, digits, '.', '_' and '-', each part starting with a letter, digit or '_' (not starting with -), at most 96 characters a part"
	wantMLName  = "an MLflow registered model name: letters, digits, '.', '_', '-' and '/', each '/'-separated part starting with a letter, digit or '_' (not starting with -), at most 200 characters"
	wantCommit  = "a git commit: 40 lowercase hex digits (64 for a SHA-256 repository)"
	wantVersion = "a version number: decimal digits, not starting with 0, at most 19"
	wantDigest  = "sha256: and 64 lowercase hex digits"
	wantSource  = "huggingface or mlflow"
)

// FieldError refuses one value of an event: Field is its name (the
// payload's, e.g. data.name, when it comes from one), Want what was
// expected.
type FieldError struct {
	Field string
	Value string
	Want  string
}

func (e *FieldError) Error() string {
	if e.Value == "" {
		return e.Field + " is empty: expected " + e.Want
	}
	return fmt.Sprintf("%s %s: expected %s", e.Field, quoteShort(e.Value), e.Want)
}

// quoteShort quotes v for a message, cut to 64 bytes: a refused value is
// shown, but a long one does not flood the log.
func quoteShort(v string) string {
	const max = 64
	if len(v) <= max {
		return strconv.Quote(v)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return strconv.Quote(v[:cut]) + "..."
}

// fieldNames are the names of an event's fields in the messages: the
// payload's when the event comes from one.
type fieldNames struct{ repo, revision, digest string }

var eventFields = fieldNames{repo: "repo", revision: "revision", digest: "digest"}

// Validate checks every field of the event against its pattern: Source
// huggingface or mlflow; Repo an org/name of the Hub or an MLflow model
// name (letters, digits, ._-/, no part starting with -); Revision a git
// commit (40 lowercase hex) or an MLflow version number; Digest empty or
// sha256: and 64 lowercase hex. The error is a *FieldError.
func (e Event) Validate() error { return e.check(eventFields) }

func (e Event) check(f fieldNames) error {
	switch e.Source {
	case "huggingface":
		if err := checkName(f.repo, e.Repo, hfRepoRE, maxHFPart, wantHFRepo, true); err != nil {
			return err
		}
		if !commitRE.MatchString(e.Revision) {
			return &FieldError{f.revision, e.Revision, wantCommit}
		}
	case "mlflow":
		if err := checkName(f.repo, e.Repo, mlNameRE, maxMLName, wantMLName, false); err != nil {
			return err
		}
		if !versionRE.MatchString(e.Revision) {
			return &FieldError{f.revision, e.Revision, wantVersion}
		}
	default:
		return &FieldError{"source", e.Source, wantSource}
	}
	if e.Digest != "" && !digestRE.MatchString(e.Digest) {
		return &FieldError{f.digest, e.Digest, wantDigest}
	}
	return nil
}

// checkName checks a name against re and its length: each part's when
// perPart, else the whole name's.
func checkName(field, v string, re *regexp.Regexp, max int, want string, perPart bool) error {
	if !re.MatchString(v) {
		return &FieldError{field, v, want}
	}
	parts := []string{v}
	if perPart {
		parts = strings.Split(v, "/")
	}
	for _, p := range parts {
		if len(p) > max {
			return &FieldError{field, v, want}
		}
	}
	return nil
}

// Placeholders are what a Command's arguments may hold; each is replaced
// by the event's value: {source} its Key, {repo}, {revision} and {digest}
// its fields.
var Placeholders = []string{"{source}", "{repo}", "{revision}", "{digest}"}

// placeholderRE finds what looks like a placeholder in an argument.
var placeholderRE = regexp.MustCompile(`\{[A-Za-z_]+\}`)

// value is the event's value for placeholder p, and the field it is.
func (e Event) value(p string) (string, string) {
	switch p {
	case "{source}":
		return e.Key(), "source"
	case "{repo}":
		return e.Repo, "repo"
	case "{revision}":
		return e.Revision, "revision"
	case "{digest}":
		return e.Digest, "digest"
	}
	return "", ""
}

// want says what a placeholder's value must be, for the error that
// refuses an event that lacks it.
func (e Event) want(field string) string {
	switch field {
	case "digest":
		return wantDigest + " (MLflow's model version tag " + DigestTag + "; Hugging Face events have none)"
	case "revision":
		if e.Source == "mlflow" {
			return wantVersion
		}
		return wantCommit
	case "repo":
		if e.Source == "mlflow" {
			return wantMLName
		}
		return wantHFRepo
	}
	return "a value"
}

// errMissing is an event without a value its release needs: answered 422.
type errMissing struct{ err error }

func (e errMissing) Error() string { return e.err.Error() }
func (e errMissing) Unwrap() error { return e.err }

func isMissing(err error) bool {
	var m errMissing
	return errors.As(err, &m)
}
