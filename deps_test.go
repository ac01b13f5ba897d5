package quorumkv_test

import (
	"go/build"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/quorumkv/quorumkv/"

// allowed lists, for each package, the project packages it may import.
// Imports point down the layers only (see docs/architecture.md).
var allowed = map[string][]string{
	"internal/mpack":       {},
	"internal/rawio":       {},
	"vclock":               {"internal/mpack"},
	"ring":                 {},
	"antientropy":          {"vclock", "wire", "store", "ring"},
	"store":                {"vclock", "internal/mpack"},
	"wire":                 {"vclock", "internal/mpack"},
	"transport":            {"internal/rawio"},
	"membership":           {"ring", "wire"},
	"replication":          {"vclock", "wire", "store", "ring", "predict", "transport"},
	"server":               {"vclock", "wire", "replication"},
	"client":               {"vclock", "wire", "internal/rawio"},
	"resp":                 {"vclock", "wire", "replication", "internal/rawio"},
	"metrics":              {"replication", "wire"},
	"dashboard":            {"wire"},
	"transfer":             {"vclock", "wire", "ring"},
	"predict":              {},
	"node":                 {"*"},
	"bench":                {"client", "wire", "vclock", "node", "predict", "internal/*"},
	"internal/clustertest": {"*"},
	"cmd/quorumkv":         {"*"},
}

func TestImportLayering(t *testing.T) {
	pkgs, err := filepath.Glob("*/*.go")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("*/*/*.go")
	pkgs = append(pkgs, more...)
	seen := map[string]bool{}
	for _, f := range pkgs {
		dir := filepath.ToSlash(filepath.Dir(f))
		if seen[dir] {
			continue
		}
		seen[dir] = true
		p, err := build.ImportDir(dir, 0)
		if err != nil {
			continue
		}
		rules, ok := allowed[dir]
		if !ok {
			if strings.HasPrefix(dir, "internal/") || strings.HasPrefix(dir, "bench/") || strings.HasPrefix(dir, "fault") || strings.HasPrefix(dir, "cmd/") {
				continue
			}
			t.Errorf("package %s is not in the layering table of deps_test.go", dir)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			dep := strings.TrimPrefix(imp, module)
			if slices.Contains(rules, "*") || slices.Contains(rules, dep) {
				continue
			}
			if strings.HasPrefix(dep, "internal/") && slices.Contains(rules, "internal/*") {
				continue
			}
			t.Errorf("%s imports %s, which the layering does not allow", dir, dep)
		}
	}
}
