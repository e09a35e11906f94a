package httpapi

// The web console's sign-in: POST /login checks a broker user as basic
// auth does and opens a session (an HttpOnly, SameSite=Strict cookie);
// requests that authenticate by that cookie must carry the session's CSRF
// token in X-CSRF-Token when they change anything. Basic auth keeps
// working for tools and needs no token. The console's pages and files
// (package console) are served here too, each with a
// Content-Security-Policy that allows only this origin's scripts.
//
// Sessions live in memory: a restart signs everyone out.

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sluicemq/sluice/internal/access"
	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/console"
)

const (
	sessionCookie = "sluice_session"
	csrfHeader    = "X-CSRF-Token"
	// sessionIdle and sessionMax bound a session's life: it ends after an
	// hour without a request, and eight hours after sign-in in any case.
	sessionIdle = time.Hour
	sessionMax  = 8 * time.Hour
	// maxSessions bounds the table; the oldest session goes first.
	maxSessions = 10000
)

// errCSRF is a cookie-authenticated request that changes state without
// its session's token: answered 403.
var errCSRF = errors.New("missing or wrong " + csrfHeader + " header: a console request that changes anything must carry its session's CSRF token")

type session struct {
	user    string
	csrf    string
	created time.Time
	seen    time.Time
}

// sessionStore is the table of signed-in sessions.
type sessionStore struct {
	now func() time.Time

	mu sync.Mutex // guards m
	m  map[string]*session
}

func newSessionStore(now func() time.Time) *sessionStore {
	return &sessionStore{now: now, m: make(map[string]*session)}
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (st *sessionStore) open(user string) (id string, s *session) {
	now := st.now()
	s = &session{user: user, csrf: randomToken(), created: now, seen: now}
	id = randomToken()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.pruneLocked(now)
	st.m[id] = s
	return id, s
}

// pruneLocked drops expired sessions and, past maxSessions, the oldest.
func (st *sessionStore) pruneLocked(now time.Time) {
	var oldestID string
	var oldest time.Time
	for id, s := range st.m {
		if st.expired(s, now) {
			delete(st.m, id)
			continue
		}
		if oldestID == "" || s.created.Before(oldest) {
			oldestID, oldest = id, s.created
		}
	}
	if len(st.m) >= maxSessions {
		delete(st.m, oldestID)
	}
}

func (st *sessionStore) expired(s *session, now time.Time) bool {
	return now.Sub(s.seen) > sessionIdle || now.Sub(s.created) > sessionMax
}

// get returns the live session id names and marks it used.
func (st *sessionStore) get(id string) (session, bool) {
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.m[id]
	if !ok {
		return session{}, false
	}
	if st.expired(s, now) {
		delete(st.m, id)
		return session{}, false
	}
	s.seen = now
	return *s, true
}

func (st *sessionStore) close(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.m, id)
}

// cookieSession returns the session r's cookie names, if any.
func (s *Server) cookieSession(r *http.Request) (string, session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return "", session{}, false
	}
	sess, ok := s.sessions.get(c.Value)
	return c.Value, sess, ok
}

// authenticateAny authenticates by basic auth when the request has it,
// else by the console's session cookie; a cookie-authenticated request
// that is not GET or HEAD must carry the session's CSRF token (errCSRF).
func (s *Server) authenticateAny(r *http.Request) (*user, error) {
	if _, _, ok := r.BasicAuth(); ok {
		return s.authenticate(r)
	}
	_, sess, ok := s.cookieSession(r)
	if !ok {
		if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
			return nil, errSessionEnded
		}
		return s.authenticate(r) // the usual "basic auth required"
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead &&
		subtle.ConstantTimeCompare([]byte(r.Header.Get(csrfHeader)), []byte(sess.csrf)) != 1 {
		return nil, errCSRF
	}
	info, err := s.b.User(sess.user)
	if err != nil {
		return nil, err // deleted since sign-in
	}
	u := &user{name: sess.user, tags: info.Tags, b: s.b}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !u.changes() {
		return nil, errLooksOnly
	}
	return u, nil
}

// errSessionEnded is a cookie whose session expired or was signed out:
// 401 without a basic-auth challenge, so the browser shows no password
// dialog and the console goes to its sign-in page.
var errSessionEnded = errors.New("the console session has ended; sign in again")

// errLooksOnly is a console user without a tag that changes anything.
var errLooksOnly = errors.New("this user may look but not change: the console's actions need the management or administrator tag")

// changes reports whether the console offers u its actions: monitoring
// alone sees but does not change.
func (u *user) changes() bool {
	return u.admin() || u.has(broker.TagManagement) || u.has(broker.TagPolicymaker)
}

// writeSessionError answers errCSRF and errLooksOnly with 403 and
// errSessionEnded with 401 and reports whether it did.
func writeSessionError(w http.ResponseWriter, err error) bool {
	switch {
	case errors.Is(err, errCSRF):
		writeError(w, http.StatusForbidden, "csrf_refused", err.Error())
	case errors.Is(err, errSessionEnded):
		writeError(w, http.StatusUnauthorized, "not_authorised", err.Error())
	case errors.Is(err, errLooksOnly):
		writeError(w, http.StatusForbidden, "not_authorised", err.Error())
	default:
		return false
	}
	return true
}

// routeConsole registers the sign-in, the session endpoint and the
// console's pages and files.
func (s *Server) routeConsole() {
	s.route("GET /api/session", needAny, s.getSession)
	s.mux.HandleFunc("GET /login", s.loginPage)
	s.mux.HandleFunc("POST /login", s.login)
	s.mux.HandleFunc("POST /logout", s.logout)
	files := console.Files()
	s.mux.Handle("GET /static/", withConsoleHeaders(files))
	for _, p := range console.Pages {
		s.mux.HandleFunc("GET "+p, s.consolePage)
	}
}

// consoleCSP allows scripts, styles, images and requests from this origin
// only, and no inline script.
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func setConsoleHeaders(h http.Header) {
	h.Set("Content-Security-Policy", consoleCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
}

func withConsoleHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setConsoleHeaders(w.Header())
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// consolePage serves the console's page shell to a signed-in user; the
// page's module reads the URL. Others are sent to /login.
func (s *Server) consolePage(w http.ResponseWriter, r *http.Request) {
	setConsoleHeaders(w.Header())
	if _, _, ok := s.cookieSession(r); !ok {
		http.Redirect(w, r, "/login?next="+url.QueryEscape(r.RequestURI), http.StatusSeeOther)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(console.Shell())
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	setConsoleHeaders(w.Header())
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(console.Login())
}

// safeNext is where to go after sign-in: a path on this server, else /.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.HasPrefix(next, "/login") {
		return "/"
	}
	return next
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	setConsoleHeaders(w.Header())
	if why := forgedWhy(r); why != "" { // guard.go: no sign-in into someone else's account from another site
		writeError(w, http.StatusForbidden, "csrf_refused", why)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Redirect(w, r, "/login?error=form", http.StatusSeeOther)
		return
	}
	name, password := r.PostForm.Get("username"), r.PostForm.Get("password")
	next := safeNext(r.PostForm.Get("next"))
	back := func(why string) {
		http.Redirect(w, r, "/login?error="+why+"&next="+url.QueryEscape(next), http.StatusSeeOther)
	}
	// The same check as basic auth, so sign-in and the API share one
	// path for passwords (and for whatever guards it).
	probe := r.Clone(r.Context())
	probe.Header = http.Header{}
	probe.SetBasicAuth(name, password)
	u, err := s.authenticate(probe)
	var throttled *access.Throttled
	if errors.As(err, &throttled) {
		back("throttled")
		return
	}
	if err != nil { // the broker logs failed logins, gathered per source
		back("invalid")
		return
	}
	if !u.may(needMonitoringOrManagement) {
		back("tags")
		return
	}
	id, _ := s.sessions.open(u.name)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(sessionMax / time.Second)})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	setConsoleHeaders(w.Header())
	if why := forgedWhy(r); why != "" {
		writeError(w, http.StatusForbidden, "csrf_refused", why)
		return
	}
	id, sess, ok := s.cookieSession(r)
	if ok {
		token := r.Header.Get(csrfHeader)
		if token == "" {
			_ = r.ParseForm()
			token = r.PostForm.Get("csrf_token")
		}
		if subtle.ConstantTimeCompare([]byte(token), []byte(sess.csrf)) != 1 {
			writeSessionError(w, errCSRF)
			return
		}
		s.sessions.close(id)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: -1})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// getSession tells the console who is signed in, what they may do and the
// CSRF token to send (empty under basic auth, which needs none).
func (s *Server) getSession(w http.ResponseWriter, r *http.Request, u *user) {
	out := api.Session{Name: u.name, Tags: u.tags, Version: s.cfg.Version,
		CanManage: u.changes(), IsAdmin: u.admin()}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	if _, _, ok := r.BasicAuth(); !ok {
		if _, sess, ok := s.cookieSession(r); ok {
			out.CSRFToken = sess.csrf
		}
	}
	writeJSON(w, http.StatusOK, out)
}
