package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/sluicemq/sluice/internal/api"
)

// consoleClient signs in through POST /login and returns a client that
// keeps the session cookie and does not follow redirects, with the
// login's answer.
func consoleClient(t *testing.T, e *testEnv, user, password string) (*http.Client, *http.Response) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.PostForm(e.url+"/login", url.Values{"username": {user}, "password": {password}, "next": {"/queues?name=x"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return c, res
}

func csrfToken(t *testing.T, e *testEnv, c *http.Client) string {
	t.Helper()
	res, err := c.Get(e.url + "/api/session")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var s api.Session
	decodeJSON(t, res, &s)
	if s.CSRFToken == "" {
		t.Fatalf("session without a CSRF token: %+v", s)
	}
	return s.CSRFToken
}

func decodeJSON(t *testing.T, res *http.Response, v any) {
	t.Helper()
	b, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

func send(t *testing.T, c *http.Client, method, u, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-CSRF-Token", token)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestConsoleLoginSetsASafeSessionCookie(t *testing.T) {
	e := start(t)
	_, res := consoleClient(t, e, "guest", "guest")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/queues?name=x" {
		t.Fatalf("login answered %d to %q, want 303 to /queues?name=x", res.StatusCode, res.Header.Get("Location"))
	}
	var c *http.Cookie
	for _, k := range res.Cookies() {
		if k.Name == "sluice_session" {
			c = k
		}
	}
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || len(c.Value) < 32 {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/, a long random value", c)
	}
	if c.Secure {
		t.Errorf("cookie is Secure over plain HTTP; the browser would not send it back")
	}
}

func TestConsoleLoginRefusesBadPasswordAndUntaggedUser(t *testing.T) {
	e := start(t)
	_, res := consoleClient(t, e, "guest", "wrong")
	if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, "/login?error=invalid") || len(res.Cookies()) != 0 {
		t.Fatalf("bad password: %d to %q with cookies %v", res.StatusCode, loc, res.Cookies())
	}
	if err := e.c.PutUser(t.Context(), "app", api.UserPut{Password: "pw", Tags: ""}); err != nil {
		t.Fatal(err)
	}
	_, res = consoleClient(t, e, "app", "pw")
	if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, "/login?error=tags") {
		t.Fatalf("untagged user: %d to %q", res.StatusCode, loc)
	}
}

func TestConsoleLoginNextStaysOnThisServer(t *testing.T) {
	e := start(t)
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example"} {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := c.PostForm(e.url+"/login", url.Values{"username": {"guest"}, "password": {"guest"}, "next": {next}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if loc := res.Header.Get("Location"); loc != "/" {
			t.Errorf("next %q: redirected to %q, want /", next, loc)
		}
	}
}

func TestConsolePagesNeedASessionAndSendCSP(t *testing.T) {
	e := start(t)
	anon := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := anon.Get(e.url + "/queues/%2F/orders?reason=rejected")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login?next="+url.QueryEscape("/queues/%2F/orders?reason=rejected") {
		t.Fatalf("anonymous page: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	c, _ := consoleClient(t, e, "guest", "guest")
	for _, p := range []string{"/", "/queues", "/queues/%2F/orders", "/queues/%2F/orders/messages/3", "/dead-letters", "/exchanges", "/connections", "/users", "/login", "/static/app.js"} {
		res, err := c.Get(e.url + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		csp := res.Header.Get("Content-Security-Policy")
		if res.StatusCode != 200 || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") ||
			!strings.Contains(csp, "default-src 'none'") {
			t.Errorf("GET %s: %d, CSP %q", p, res.StatusCode, csp)
		}
		if strings.HasSuffix(p, ".js") {
			continue
		}
		if strings.Contains(string(b), "<script>") || strings.Contains(string(b), " onclick=") || strings.Contains(string(b), " onload=") {
			t.Errorf("GET %s has an inline script", p)
		}
	}
	// The API's own 404 is unchanged.
	if code, _ := e.raw(t, "GET", "/api/nothing", ""); code != http.StatusNotFound {
		t.Errorf("GET /api/nothing: %d", code)
	}
}

func TestConsoleSessionNeedsCSRFTokenToChange(t *testing.T) {
	e := start(t)
	c, _ := consoleClient(t, e, "guest", "guest")
	token := csrfToken(t, e, c)
	put := e.url + "/api/queues/%2F/console-q"
	if code, body := send(t, c, "PUT", put, "", `{"durable":true}`); code != http.StatusForbidden || !strings.Contains(body, "csrf_refused") {
		t.Fatalf("PUT without the token: %d %s, want 403 csrf_refused", code, body)
	}
	if code, body := send(t, c, "PUT", put, "not-"+token, `{"durable":true}`); code != http.StatusForbidden {
		t.Fatalf("PUT with a wrong token: %d %s, want 403", code, body)
	}
	if _, err := e.c.Queue(t.Context(), "/", "console-q"); err == nil {
		t.Fatalf("a refused PUT declared the queue")
	}
	if code, body := send(t, c, "PUT", put, token, `{"durable":true}`); code != http.StatusCreated && code != http.StatusNoContent {
		t.Fatalf("PUT with the token: %d %s", code, body)
	}
	// Reads need no token; basic auth needs none either.
	if code, _ := send(t, c, "GET", put, "", ""); code != http.StatusOK {
		t.Fatalf("GET with the session: %d", code)
	}
	if code, body := e.raw(t, "DELETE", "/api/queues/%2F/console-q", ""); code != http.StatusNoContent {
		t.Fatalf("DELETE with basic auth and no token: %d %s", code, body)
	}
}

func TestConsoleMonitoringSessionCannotChange(t *testing.T) {
	e := start(t)
	if err := e.c.PutUser(t.Context(), "watcher", api.UserPut{Password: "pw", Tags: "monitoring"}); err != nil {
		t.Fatal(err)
	}
	if code, body := e.raw(t, "PUT", "/api/permissions/%2F/watcher", `{"configure":".*","write":".*","read":".*"}`); code >= 300 {
		t.Fatal(code, body)
	}
	c, _ := consoleClient(t, e, "watcher", "pw")
	token := csrfToken(t, e, c)
	res, err := c.Get(e.url + "/api/session")
	if err != nil {
		t.Fatal(err)
	}
	var s api.Session
	decodeJSON(t, res, &s)
	res.Body.Close()
	if s.CanManage || s.IsAdmin {
		t.Fatalf("monitoring session: %+v, want neither can_manage nor is_admin", s)
	}
	if code, body := send(t, c, "PUT", e.url+"/api/queues/%2F/w", token, `{}`); code != http.StatusForbidden {
		t.Fatalf("monitoring PUT: %d %s, want 403", code, body)
	}
	if code, _ := send(t, c, "GET", e.url+"/api/queues", "", ""); code != http.StatusOK {
		t.Fatalf("monitoring GET: %d", code)
	}
}

func TestConsoleLogoutEndsTheSession(t *testing.T) {
	e := start(t)
	c, _ := consoleClient(t, e, "guest", "guest")
	token := csrfToken(t, e, c)
	if code, _ := send(t, c, "POST", e.url+"/logout", "", ""); code != http.StatusForbidden {
		t.Fatalf("logout without the token: %d, want 403", code)
	}
	// Keep the old cookie to replay it after sign-out.
	u, _ := url.Parse(e.url)
	old := c.Jar.Cookies(u)
	if code, _ := send(t, c, "POST", e.url+"/logout", token, ""); code != http.StatusSeeOther {
		t.Fatalf("logout: %d", code)
	}
	req, _ := http.NewRequest("GET", e.url+"/api/overview", nil)
	for _, k := range old {
		req.AddCookie(k)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") != "" {
		t.Fatalf("old cookie after logout: %d, WWW-Authenticate %q; want 401 without a challenge",
			res.StatusCode, res.Header.Get("WWW-Authenticate"))
	}
}
