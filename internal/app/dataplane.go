package app

import (
	"net/http"
	"path"
	"strings"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/server"
)

// The data plane on a listener of its own (Config.ServeListen, or the
// gateway alone with DataPlaneOnly) is served by the same server handler
// as the API, for its request IDs, access log, metrics and token checks,
// behind a filter that lets only /serve/ and the probes through. The
// filter looks at the path both as sent and as ServeMux cleans it, so no
// dot-segment reaches an API route from the data-plane listener (the mux
// redirects such paths instead of serving them anyway).

// isServePath reports whether p is the gateway's: /serve or below /serve/.
func isServePath(p string) bool {
	return p == "/serve" || strings.HasPrefix(p, "/serve/")
}

// dataPlane serves /serve/..., GET /healthz and GET /readyz (for load
// balancers in front of the data plane) through h and answers anything
// else 404, without saying where the API is: the data-plane listener may
// face clients that have no business with the registry.
func dataPlane(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if (isServePath(p) && isServePath(path.Clean(p))) || p == "/healthz" || p == "/readyz" {
			h.ServeHTTP(w, r)
			return
		}
		refuse(w, r, "serve_listener", "no route for "+r.Method+" "+p+": this listener serves the gateway only (/serve/{endpoint}/...), not the registry API")
	})
}

// withoutServe is the API listener when the data plane has its own:
// /serve/ answers 404 naming where it went, whatever the token, so a
// client left on the old address learns what to change instead of
// guessing at a 401 or 403.
func withoutServe(h http.Handler, serveURL string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if isServePath(p) || isServePath(path.Clean(p)) {
			refuse(w, r, "api_listener", "this listener serves the registry API; endpoints are served on the serve listener (--serve-listen): "+serveURL+"/serve/{endpoint}/")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// refuse answers 404 problem+json with the headers the API's middleware
// would have set.
func refuse(w http.ResponseWriter, r *http.Request, rule, detail string) {
	id := r.Header.Get("X-Request-ID")
	if !registry.ValidRequestID(id) {
		id = registry.NewRequestID()
	}
	w.Header().Set("X-Request-ID", id)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	server.WriteProblem(w, r, &registry.Error{Code: registry.CodeNotFound, Rule: rule, Message: detail})
}
