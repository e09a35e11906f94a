package httpapi

// What every request meets before its handler, against forged requests
// and oversized bodies:
//
//   - A request that changes state (any method but GET, HEAD, OPTIONS)
//     is refused with 403 when the browser says it comes from another
//     site: Sec-Fetch-Site other than same-origin or none, or an Origin
//     that is not this server's own. Tools send neither header and are
//     not affected.
//   - A POST, PUT or PATCH with a body must say Content-Type:
//     application/json (415 otherwise), which a cross-site HTML form
//     cannot send and a cross-site script cannot send without a CORS
//     preflight the API never answers.
//   - A 401 carries the Basic challenge only for a client that is not a
//     browser (no Sec-Fetch-* header, no Origin): a browser never gets
//     the password dialog whose answer it would then attach to every
//     request to this origin, forged ones included. The console signs in
//     with its own form and session cookie (session.go).
//   - The body is read only after the request is authorised, through a
//     limit sized to the route (Config's MaxBodyBytes, MaxMessageSize,
//     MaxDefinitionsBytes).

import (
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// changesState reports whether method may change anything.
func changesState(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// forgedWhy says why a state-changing request looks cross-site ("" when
// it does not).
func forgedWhy(r *http.Request) string {
	if !changesState(r.Method) {
		return ""
	}
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return "the browser says this request comes from another site (Sec-Fetch-Site: " + site + ")"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return ""
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || !ownHost(r, u.Host) {
		return "Origin " + origin + " is not this server (" + r.Host + ")"
	}
	return ""
}

// ownHost reports whether host names this server: the request's Host, or
// the X-Forwarded-Host a reverse proxy in front of it set (a cross-site
// page cannot set that header without a CORS preflight).
func ownHost(r *http.Request, host string) bool {
	if strings.EqualFold(host, r.Host) {
		return true
	}
	for _, v := range r.Header.Values("X-Forwarded-Host") {
		for _, h := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(h), host) {
				return true
			}
		}
	}
	return false
}

// hasBody reports whether r announces a body.
func hasBody(r *http.Request) bool {
	return r.ContentLength > 0 || r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody
}

// jsonWhy says why a request's body is not acceptable JSON by its
// declared type ("" when it is, or when there is no body to judge).
func jsonWhy(r *http.Request) string {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		return ""
	}
	if !hasBody(r) {
		return ""
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		if ct == "" {
			ct = "none"
		}
		return "Content-Type " + ct + "; a request body must be application/json"
	}
	return ""
}

// fromBrowser reports whether r was sent by a web browser (which adds
// Fetch metadata or an Origin; tools add neither).
func fromBrowser(r *http.Request) bool {
	return r.Header.Get("Sec-Fetch-Mode") != "" || r.Header.Get("Sec-Fetch-Site") != "" ||
		r.Header.Get("Sec-Fetch-Dest") != "" || r.Header.Get("Origin") != ""
}

// challenge answers an unauthenticated request with 401, with the Basic
// challenge unless a browser asked.
func challenge(w http.ResponseWriter, r *http.Request, reason string) {
	if !fromBrowser(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="Sluice"`)
	}
	writeError(w, http.StatusUnauthorized, "not_authorised", reason)
}

// guardForged answers a forged-looking request and reports whether it
// did; it runs before authentication, so that a forged request does not
// even count as a login attempt.
func guardForged(w http.ResponseWriter, r *http.Request) bool {
	if why := forgedWhy(r); why != "" {
		writeError(w, http.StatusForbidden, "csrf_refused", why)
		return true
	}
	return false
}

// guardJSON answers a body that is not JSON by its type and reports
// whether it did; it runs once the request is authorised.
func guardJSON(w http.ResponseWriter, r *http.Request) bool {
	if why := jsonWhy(r); why != "" {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", why)
		return true
	}
	return false
}
