package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Secret is a reference to a credential, never the credential itself:
// "env:NAME" reads the environment variable NAME, "file:PATH" reads the file
// (trailing newline trimmed). The reference is what is printed, logged and
// written back; only Resolve returns the value.
type Secret struct {
	Ref string
}

// ParseSecret checks that s is a reference. Its error never repeats s, in case
// someone pasted the credential itself into the file.
func ParseSecret(s string) (Secret, error) {
	kind, rest, ok := strings.Cut(s, ":")
	switch {
	case ok && kind == "env" && validEnvName(rest):
		return Secret{Ref: s}, nil
	case ok && kind == "env":
		return Secret{}, errors.New("expected env:NAME with NAME made of letters, digits and _")
	case ok && kind == "file" && rest != "":
		return Secret{Ref: s}, nil
	}
	return Secret{}, errors.New("secrets are never values in the file: write a reference, env:NAME or file:PATH (the value given is not repeated here)")
}

func validEnvName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// IsSet reports whether the secret was configured.
func (s Secret) IsSet() bool { return s.Ref != "" }

// String returns the reference, never the value.
func (s Secret) String() string { return s.Ref }

// MarshalYAML writes the reference.
func (s Secret) MarshalYAML() (any, error) { return s.Ref, nil }

// Resolve returns the secret's value. getenv is os.Getenv when nil.
func (s Secret) Resolve(getenv func(string) string) (string, error) {
	kind, rest, _ := strings.Cut(s.Ref, ":")
	switch kind {
	case "env":
		if getenv == nil {
			getenv = os.Getenv
		}
		v := getenv(rest)
		if v == "" {
			return "", fmt.Errorf("secret %s: environment variable %s is not set", s.Ref, rest)
		}
		return v, nil
	case "file":
		b, err := os.ReadFile(rest)
		if err != nil {
			return "", fmt.Errorf("secret %s: %w", s.Ref, errors.Unwrap(err))
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("secret %s: file is empty", s.Ref)
		}
		return v, nil
	}
	return "", fmt.Errorf("secret %q is not set", s.Ref)
}
