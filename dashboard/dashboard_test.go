package dashboard

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	h := Handler()
	for _, c := range []struct {
		method, path string
		code         int
		ctype        string
	}{
		{"GET", "/", 200, "text/html"},
		{"HEAD", "/", 200, "text/html"},
		{"GET", "/dashboard/app.js", 200, "text/javascript"},
		{"GET", "/dashboard/style.css", 200, "text/css"},
		{"GET", "/dashboard/icon.svg", 200, "image/svg+xml"},
		{"GET", "/dashboard/index.html", 404, ""},
		{"GET", "/dashboard/", 404, ""},
		{"GET", "/dashboard/../go.mod", 404, ""},
		{"GET", "/dashboard/assets/app.js", 404, ""},
		{"GET", "/dashboard/nope.js", 404, ""},
		{"POST", "/", 405, ""},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != c.code {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, rec.Code, c.code)
		}
		if c.ctype != "" && !strings.HasPrefix(rec.Header().Get("Content-Type"), c.ctype) {
			t.Errorf("%s %s: Content-Type %q", c.method, c.path, rec.Header().Get("Content-Type"))
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	body := rec.Body.String()
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}
	// Self-contained: nothing is loaded from another origin.
	// The CSP allows no inline style or script, so the page must have none.
	for _, bad := range []string{"<style", " style=\"", "<script>", "onclick="} {
		if strings.Contains(body, bad) {
			t.Errorf("page contains %q, which its CSP forbids", bad)
		}
	}
	for _, name := range []string{"assets/index.html", "assets/app.js", "assets/style.css"} {
		b, _ := assets.ReadFile(name)
		s := string(b)
		s = strings.ReplaceAll(s, "http://www.w3.org/2000/svg", "")
		if strings.Contains(s, "http://") || strings.Contains(s, "https://") {
			t.Errorf("%s refers to another origin", name)
		}
	}
	for _, want := range []string{"/dashboard/app.js", "/dashboard/style.css", "Members", "Anti-entropy", "Ownership transfers", "Hints"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}
