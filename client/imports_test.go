package client

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsLayering enforces the layer rule: the client imports only the
// standard library, wire, vclock and internal/rawio (standard library
// only), so programs that embed it stay small.
func TestImportsLayering(t *testing.T) {
	allowed := map[string]bool{
		"github.com/quorumkv/quorumkv/wire":           true,
		"github.com/quorumkv/quorumkv/vclock":         true,
		"github.com/quorumkv/quorumkv/internal/rawio": true,
		"github.com/quorumkv/quorumkv/client":         true, // external tests and examples
	}
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files: %v", err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, f, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range file.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(p, "/")
			if !strings.Contains(first, ".") || allowed[p] {
				continue // standard library paths have no dot in their first element
			}
			t.Errorf("%s imports %s; the client may import only the standard library, wire and vclock", f, p)
		}
	}
}
