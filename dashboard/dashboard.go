// Package dashboard serves the live dashboard at GET /: one page, embedded
// in the binary (no build step, nothing loaded from the network), that polls
// the node's /v1/status and /v1/stats every 1.5 s and draws members and
// their states, ring ownership, request rates and latencies, hints,
// ownership transfers and anti-entropy progress.
//
// The page and its two assets are static; every figure comes from the JSON
// endpoints, which are behind the same bearer token as the rest of the API.
// Values from the cluster are inserted as text, never as HTML, and the page
// is served with a Content-Security-Policy that allows nothing but this
// node.
package dashboard

import (
	"bytes"
	"embed"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// AssetPrefix is where the page's script, style sheet and icon are served.
// Mount Handler at both "/" and AssetPrefix.
const AssetPrefix = "/dashboard/"

var types = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// started is the Last-Modified of every asset: they change only with the
// binary.
var started = time.Now()

// Handler serves the page at "/" and its assets under AssetPrefix.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "the dashboard only answers GET", http.StatusMethodNotAllowed)
			return
		}
		name := "index.html"
		if r.URL.Path != "/" {
			rest, ok := strings.CutPrefix(r.URL.Path, AssetPrefix)
			if !ok || rest == "" || rest != path.Base(rest) {
				http.NotFound(w, r)
				return
			}
			name = rest
		}
		b, err := assets.ReadFile("assets/" + name)
		ct, known := types[path.Ext(name)]
		if err != nil || !known || name == "index.html" && r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", ct)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		if name == "index.html" {
			h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
			h.Set("X-Frame-Options", "DENY")
			h.Set("Referrer-Policy", "no-referrer")
		}
		http.ServeContent(w, r, name, started, bytes.NewReader(b))
	})
}
