// Package secretsexec hands a stage the secrets its config refers to
// (env:NAME and file:PATH references) from a directory the pipeline copied
// into the stage's container: env/NAME holds the value of the variable
// NAME, file/PATH the contents of the file /PATH. Apply reads them, writes
// the files where the config expects them (mode 0600), and deletes the
// directory, so the secrets are never in the container's configuration,
// only in the process that needs them. `modelship secrets-exec` runs it,
// then the stage.
package secretsexec

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Dir is where the pipeline copies the secrets in a runner container.
const Dir = "/tmp/modelship-secrets"

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Path is where reference ref (env:NAME or file:/absolute/path) is kept
// under a secrets directory, relative to it.
func Path(ref string) (string, error) {
	if name, ok := strings.CutPrefix(ref, "env:"); ok && envName.MatchString(name) {
		return filepath.Join("env", name), nil
	}
	if p, ok := strings.CutPrefix(ref, "file:"); ok && filepath.IsAbs(p) && filepath.Clean(p) == p && p != "/" {
		return filepath.Join("file", p), nil
	}
	return "", fmt.Errorf("secret reference %q: expected env:NAME or file:/absolute/path (the reference the config uses)", ref)
}

// Apply reads the secrets under dir, writes each file secret at its path
// below root ("/" in a container) with mode 0600, removes dir, and
// returns the variables (NAME=VALUE) to add to the stage's environment. A
// missing dir holds no secrets. An error names the entry, never a value.
func Apply(dir, root string) ([]string, error) {
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return nil, nil
	}
	env, err := readEnv(filepath.Join(dir, "env"))
	if err != nil {
		return nil, err
	}
	files := filepath.Join(dir, "file")
	err = filepath.WalkDir(files, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(files, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("secret file:/%s: %w", rel, err)
		}
		dst := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return fmt.Errorf("secret file:/%s: %w", rel, err)
		}
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			return fmt.Errorf("secret file:/%s: %w", rel, err)
		}
		return os.Chmod(dst, 0o600) // an existing file keeps its mode otherwise
	})
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("removing the secrets directory %s: %w", dir, err)
	}
	return env, nil
}

func readEnv(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	var env []string
	for _, e := range entries {
		if !envName.MatchString(e.Name()) || e.IsDir() {
			return nil, fmt.Errorf("secrets: %s: expected a file named after a variable (env:NAME)", filepath.Join(dir, e.Name()))
		}
		v, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("secret env:%s: %w", e.Name(), err)
		}
		env = append(env, e.Name()+"="+string(v))
	}
	return env, nil
}
