//go:build integration

package console_test

// The console in a real browser: Debian's chromium, headless, driven by
// chromedp against a whole broker (AMQP and HTTP on 127.0.0.1:0). One
// test walks a person's path through a failure: sign in, watch a queue
// fill, find a dead letter by reason and body text, read its history,
// fix its body, redrive the filtered selection and watch the progress
// bar, then check with a real AMQP consumer that it arrived. Then the
// monitoring user and a cross-site form.
//
// With SLUICE_CONSOLE_SCREENSHOTS=1 the same run writes the PNGs that
// docs/console.md shows into docs/console/.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/httpapi"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

type env struct {
	sb  *sluicetest.Broker
	url string
	c   *api.Client
}

func startEnv(t *testing.T) *env {
	t.Helper()
	sb := sluicetest.Start(t)
	cfg := httpapi.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg.DataDir = t.TempDir()
	cfg.SampleInterval = time.Second
	cfg.Version = "test"
	srv, err := httpapi.New(cfg, sb.Broker, sb.Server)
	if err != nil {
		t.Fatalf("httpapi.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("close http: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	u := "http://" + ln.Addr().String()
	return &env{sb: sb, url: u, c: api.NewClient(u, "guest", "guest")}
}

// browser starts headless chromium; its context ends with the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (scripts/install-test-deps.sh installs it): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 240*time.Second)
	t.Cleanup(func() { cancelT(); cancelB(); cancelA() })
	chromedp.ListenTarget(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			t.Logf("browser: exception: %s", ev.ExceptionDetails.Error())
		case *runtime.EventConsoleAPICalled:
			for _, a := range ev.Args {
				t.Logf("browser console %s: %s", ev.Type, a.Value)
			}
		}
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	step, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	if err := chromedp.Run(step, actions...); err != nil {
		var body string
		_ = chromedp.Run(ctx, chromedp.Text("body", &body, chromedp.ByQuery))
		t.Fatalf("%s: %v\npage text:\n%s", what, err, body)
	}
}

// waitJS polls a JavaScript predicate until it holds.
func waitJS(expr string) chromedp.Action {
	return chromedp.Poll(expr, nil, chromedp.WithPollingInterval(100*time.Millisecond))
}

// shot writes docs/console/name.png when SLUICE_CONSOLE_SCREENSHOTS is set.
func shot(t *testing.T, name string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		if os.Getenv("SLUICE_CONSOLE_SCREENSHOTS") == "" {
			return nil
		}
		var png []byte
		if err := chromedp.FullScreenshot(&png, 100).Do(ctx); err != nil {
			return err
		}
		path := filepath.Join("..", "..", "docs", "console", name+".png")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		t.Logf("screenshot %s", path)
		return os.WriteFile(path, png, 0o644)
	})
}

func login(t *testing.T, ctx context.Context, base, user, password string) {
	t.Helper()
	run(t, ctx, "sign in as "+user,
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(`input[name="username"]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="username"]`, user, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="password"]`, password, chromedp.ByQuery),
		chromedp.Click(`button[type="submit"]`, chromedp.ByQuery),
	)
	run(t, ctx, "signed in as "+user,
		chromedp.WaitVisible("#who", chromedp.ByID),
		waitJS(`document.getElementById('who') && document.getElementById('who').textContent.startsWith(`+strconv.Quote(user)+`)`),
	)
}

// seed declares orders → orders.dlq (rejects) and payments → payments.dlq
// (rejects and length limit) and dead-letters n orders, the third of
// which carries "BROKEN" in its body.
func seed(t *testing.T, e *env, n int) {
	t.Helper()
	if err := e.c.Do(context.Background(), http.MethodPut, "/api/schemas/%2F/order", nil, map[string]any{"schema": map[string]any{
		"type": "object", "required": []string{"order", "sku", "amount"},
		"properties": map[string]any{"amount": map[string]any{"type": "number"}}}}, nil); err != nil {
		t.Fatalf("put schema: %v", err)
	}
	conn := e.sb.Dial(t)
	ch := sluicetest.Channel(t, conn)
	for _, q := range []struct {
		name string
		args amqp.Table
	}{
		{"orders.dlq", nil},
		{"payments.dlq", nil},
		{"orders", amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "orders.dlq", "x-schema": "order"}},
		{"payments", amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "payments.dlq", "x-max-length": int32(3)}},
		{"depth", nil},
	} {
		if _, err := ch.QueueDeclare(q.name, true, false, false, false, q.args); err != nil {
			t.Fatalf("declare %s: %v", q.name, err)
		}
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	pub := func(q, body string) {
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", q, false, false,
			amqp.Publishing{ContentType: "application/json", Body: []byte(body), DeliveryMode: amqp.Persistent})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := dc.WaitContext(context.Background()); err != nil || !ok {
			t.Fatalf("confirm: %v %v", ok, err)
		}
	}
	for i := range n {
		sku := fmt.Sprintf("sku-%d", i)
		if i == 2 {
			sku = "BROKEN-sku"
		}
		pub("orders", fmt.Sprintf(`{"order":%d,"sku":%q,"amount":%d}`, i, sku, 10+i))
	}
	for i := range 6 {
		pub("payments", fmt.Sprintf(`{"payment":%d}`, i)) // 3 fall off the head: maxlen
	}
	rejectAll(t, ch, "orders", n)
	rejectAll(t, ch, "payments", 2)
	waitDepth(t, e, "orders.dlq", n)
	waitDepth(t, e, "payments.dlq", 5)
}

// rejectAll consumes count messages from q and rejects them without
// requeue, so they are dead-lettered.
func rejectAll(t *testing.T, ch *amqp.Channel, q string, count int) {
	t.Helper()
	tag := "rejecter-" + q
	d, err := ch.Consume(q, tag, false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range count {
		select {
		case m := <-d:
			if err := m.Reject(false); err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no delivery from %s", q)
		}
	}
	if err := ch.Cancel(tag, false); err != nil {
		t.Fatal(err)
	}
}

func waitDepth(t *testing.T, e *env, q string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := e.c.Queue(context.Background(), "/", q)
		if err == nil && got.Messages == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s holds %d messages (err %v), want %d", q, got.Messages, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConsoleInBrowser(t *testing.T) {
	e := startEnv(t)
	const n = 40
	seed(t, e, n)
	ctx := browser(t)

	login(t, ctx, e.url, "guest", "guest")
	run(t, ctx, "overview", waitJS(`document.querySelector('.tiles .tile')`),
		waitJS(`document.querySelectorAll('.chart polyline').length > 0`))

	// A publisher runs; the queue page's ready count moves.
	run(t, ctx, "open the depth queue", chromedp.Navigate(e.url+"/queues/%2F/depth"),
		waitJS(`document.getElementById('q-ready') && document.getElementById('q-ready').textContent === '0'`))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := amqp.Dial(e.sb.URL())
		if err != nil {
			t.Errorf("dial: %v", err)
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Errorf("channel: %v", err)
			return
		}
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = ch.PublishWithContext(context.Background(), "", "depth", false, false, amqp.Publishing{Body: []byte("tick")})
			}
		}
	}()
	run(t, ctx, "see the depth move", waitJS(`Number(document.getElementById('q-ready').textContent.replace(/,/g,'')) > 0`))
	var first string
	run(t, ctx, "read the depth", chromedp.Text("#q-ready", &first, chromedp.ByID))
	run(t, ctx, "see the depth move again", waitJS(`document.getElementById('q-ready').textContent !== `+strconv.Quote(first)))
	if os.Getenv("SLUICE_CONSOLE_SCREENSHOTS") != "" {
		// Let the overview's charts gather a few samples while the
		// publisher runs.
		run(t, ctx, "overview while publishing", chromedp.Navigate(e.url+"/"),
			waitJS(`(() => { const p = document.querySelector('.chart polyline'); return p && p.points.length >= 4; })()`),
			shot(t, "overview"))
	}
	close(stop)
	wg.Wait()

	// The dead-letter view: both queues, by reason and by source.
	run(t, ctx, "dead letters", chromedp.Navigate(e.url+"/dead-letters"),
		waitJS(`document.querySelector('section.dlq[data-queue="orders.dlq"]') && document.querySelector('section.dlq[data-queue="payments.dlq"]')`))
	var dl string
	run(t, ctx, "read dead letters", chromedp.Text("main", &dl, chromedp.ByQuery), shot(t, "dead-letters"))
	for _, want := range []string{"rejected", "maxlen", "orders", "payments", "Newest failure"} {
		if !strings.Contains(dl, want) {
			t.Errorf("dead-letter view lacks %q:\n%s", want, dl)
		}
	}

	// Find the broken order by reason and body text, with the filter form.
	run(t, ctx, "filter", chromedp.Navigate(e.url+"/queues/%2F/orders.dlq"),
		chromedp.WaitVisible(`select[name="reason"]`, chromedp.ByQuery),
		waitJS(`document.querySelectorAll('table.messages tbody tr').length === `+strconv.Itoa(n)),
		chromedp.SetValue(`select[name="reason"]`, "rejected", chromedp.ByQuery),
		chromedp.SendKeys(`input[name="body"]`, "BROKEN", chromedp.ByQuery),
		chromedp.Click(`form.filters button[type="submit"]`, chromedp.ByQuery),
		waitJS(`location.search.includes('body=BROKEN') && document.querySelectorAll('table.messages tbody tr').length === 1`))
	var row string
	run(t, ctx, "read the row", chromedp.Text("table.messages tbody tr", &row, chromedp.ByQuery))
	if !strings.Contains(row, "BROKEN-sku") || !strings.Contains(row, "rejected") {
		t.Fatalf("filtered row: %q", row)
	}

	// Its history, in words.
	run(t, ctx, "open the message", chromedp.Click(`table.messages tbody tr a`, chromedp.ByQuery),
		waitJS(`document.querySelector('ol.deaths li')`))
	var hist string
	run(t, ctx, "read the history", chromedp.Text("ol.deaths", &hist, chromedp.ByQuery), shot(t, "message-history"))
	if !strings.Contains(hist, "In queue orders") || !strings.Contains(hist, "rejected by a consumer") || !strings.Contains(hist, "1 time(s)") {
		t.Fatalf("x-death history: %q", hist)
	}
	var path string
	run(t, ctx, "where", chromedp.Evaluate(`location.pathname`, &path))
	id, err := strconv.ParseUint(path[strings.LastIndex(path, "/")+1:], 10, 64)
	if err != nil {
		t.Fatalf("message URL %q: %v", path, err)
	}

	// An edit the origin's schema refuses is not saved; the error names
	// the field.
	run(t, ctx, "edit against the schema",
		chromedp.SetValue(`textarea[name="edit-body"]`, `{"order":2,"sku":"sku-2","amount":"twelve"}`, chromedp.ByQuery),
		chromedp.Click(`button[data-action="save-edit"]`, chromedp.ByQuery),
		waitJS(`document.querySelector('#edit-body-error li[data-pointer="/amount"]') && document.querySelector('textarea[name="edit-body"][aria-invalid="true"]') === document.activeElement`))
	var schemaErr string
	run(t, ctx, "read the schema error", chromedp.Text("#edit-body-error", &schemaErr, chromedp.ByID), shot(t, "edit-schema-error"))
	if !strings.Contains(schemaErr, `schema “order”`) || !strings.Contains(schemaErr, "/amount") {
		t.Fatalf("schema error at the body: %q", schemaErr)
	}

	// Fix its body.
	const fixed = `{"order":2,"sku":"sku-2","amount":12}`
	run(t, ctx, "edit the body",
		chromedp.SetValue(`textarea[name="edit-body"]`, fixed, chromedp.ByQuery),
		chromedp.Click(`button[data-action="save-edit"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`dialog[open] button.primary`, chromedp.ByQuery),
		chromedp.Click(`dialog[open] button.primary`, chromedp.ByQuery),
		waitJS(`document.getElementById('message-body') && document.getElementById('message-body').textContent.includes('"sku-2"')`))
	m, err := e.c.Message(context.Background(), "/", "orders.dlq", id)
	if err != nil || m.Payload != fixed {
		t.Fatalf("after the edit the message is %q (%v), want %q", m.Payload, err, fixed)
	}

	// Redrive everything the filter reason=rejected matches, at a rate
	// that lets the progress bar be seen, reload, and watch it finish.
	run(t, ctx, "open the redrive", chromedp.Navigate(e.url+"/queues/%2F/orders.dlq?reason=rejected"),
		waitJS(`document.querySelectorAll('table.messages tbody tr').length === `+strconv.Itoa(n)),
		chromedp.Click(`button[data-action="redrive-matching"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`dialog.redrive`, chromedp.ByQuery),
		chromedp.Click(`button[data-action="dry-run"]`, chromedp.ByQuery),
		waitJS(`document.querySelector('.dry-run') && document.querySelector('.dry-run').textContent.includes("to queue 'orders'")`))
	var dry string
	run(t, ctx, "read the dry run", chromedp.Text(".dry-run", &dry, chromedp.ByQuery))
	if !strings.Contains(dry, fmt.Sprintf("%d message(s) would move", n)) || !strings.Contains(dry, fmt.Sprintf("%d to queue 'orders'", n)) {
		t.Fatalf("dry run says %q", dry)
	}
	run(t, ctx, "start the redrive",
		chromedp.SetValue(`dialog.redrive input[name="rate"]`, "20", chromedp.ByQuery),
		chromedp.Click(`button[data-action="start-redrive"]`, chromedp.ByQuery),
		waitJS(`document.querySelector('section.task') && Number(document.querySelector('section.task').dataset.moved) > 0`),
		shot(t, "redrive-progress"),
		waitJS(`location.search.includes('task=')`),
		chromedp.Reload(),
		waitJS(`document.querySelector('section.task')`),
		chromedp.Poll(`(() => { const s = document.querySelector('section.task'); return s && s.dataset.state === 'done'; })()`, nil,
			chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second)))
	var moved, total, value, max string
	run(t, ctx, "read the bar",
		chromedp.AttributeValue("section.task", "data-moved", &moved, nil, chromedp.ByQuery),
		chromedp.AttributeValue("section.task", "data-total", &total, nil, chromedp.ByQuery),
		chromedp.Evaluate(`String(document.querySelector('section.task progress').value)`, &value),
		chromedp.Evaluate(`String(document.querySelector('section.task progress').max)`, &max))
	if moved != strconv.Itoa(n) || total != strconv.Itoa(n) || value != max {
		t.Fatalf("progress at the end: moved %s of %s, bar %s of %s; want %d of %d, full", moved, total, value, max, n, n)
	}

	// A real consumer finds the fixed order in its source queue; the
	// dead-letter queue is empty.
	waitDepth(t, e, "orders.dlq", 0)
	conn := e.sb.Dial(t)
	ch := sluicetest.Channel(t, conn)
	d, err := ch.Consume("orders", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for range n {
		select {
		case msg := <-d:
			if string(msg.Body) == fixed {
				found = true
				if msg.Headers["x-death"] == nil {
					t.Errorf("the redriven message lost its x-death history")
				}
			}
			if strings.Contains(string(msg.Body), "BROKEN") {
				t.Errorf("the unedited body arrived: %s", msg.Body)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("orders: fewer messages than were redriven")
		}
	}
	if !found {
		t.Fatalf("the edited message did not arrive in orders")
	}

	// A slow redrive can be cancelled; what moved stays moved.
	run(t, ctx, "start a slow redrive", chromedp.Navigate(e.url+"/queues/%2F/depth"),
		waitJS(`document.querySelectorAll('table.messages tbody tr').length > 0`),
		chromedp.Click(`button[data-action="redrive-matching"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`dialog.redrive`, chromedp.ByQuery),
		chromedp.SendKeys(`dialog.redrive input[name="target"]`, "orders.dlq", chromedp.ByQuery),
		chromedp.SetValue(`dialog.redrive input[name="rate"]`, "2", chromedp.ByQuery),
		chromedp.Click(`button[data-action="start-redrive"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`section.task button[data-action="cancel-task"]`, chromedp.ByQuery),
		chromedp.Click(`section.task button[data-action="cancel-task"]`, chromedp.ByQuery),
		waitJS(`document.querySelector('section.task').dataset.state === 'cancelled'`))
	var cmoved, ctotal string
	run(t, ctx, "read the cancelled task",
		chromedp.AttributeValue("section.task", "data-moved", &cmoved, nil, chromedp.ByQuery),
		chromedp.AttributeValue("section.task", "data-total", &ctotal, nil, chromedp.ByQuery))
	if nm, _ := strconv.Atoi(cmoved); nm >= 100 || ctotal == cmoved {
		t.Fatalf("cancelled redrive moved %s of %s", cmoved, ctotal)
	}

	// The other pages draw their objects, and the console fits a phone.
	run(t, ctx, "queues page", chromedp.Navigate(e.url+"/queues?name=orders"),
		waitJS(`document.querySelector('table.queues tr[data-queue="orders"]') && document.querySelector('table.queues tr[data-queue="orders.dlq"]') && !document.querySelector('table.queues tr[data-queue="depth"]')`),
		shot(t, "queues"))
	run(t, ctx, "exchanges page", chromedp.Navigate(e.url+"/exchanges"),
		waitJS(`document.querySelector('tr[data-exchange="amq.topic"]')`))
	run(t, ctx, "connections page", chromedp.Navigate(e.url+"/connections"),
		waitJS(`document.querySelector('section.conn') && document.querySelector('section.conn').textContent.includes('Channel 1')`),
		shot(t, "connections"))
	run(t, ctx, "users page", chromedp.Navigate(e.url+"/users"),
		waitJS(`document.querySelector('main table') && document.querySelector('main table').textContent.includes('administrator')`))
	var overflow bool
	run(t, ctx, "narrow window", chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(e.url+"/queues/%2F/payments.dlq"),
		waitJS(`document.querySelectorAll('table.messages tbody tr').length === 5`),
		chromedp.Evaluate(`document.documentElement.scrollWidth > window.innerWidth + 1`, &overflow),
		shot(t, "narrow"), chromedp.EmulateViewport(1280, 900))
	if overflow {
		t.Errorf("in a 390 px window the page scrolls sideways")
	}

	// A cross-site form posting with the session cookie but no CSRF token.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><form id="f" method="post" action="%s/api/exchanges/%%2F/amq.default/publish">
<input name="routing_key" value="depth"></form><script>document.getElementById('f').submit()</script>`, e.url)
	}))
	defer evil.Close()
	before, err := e.c.Queue(context.Background(), "/", "depth")
	if err != nil {
		t.Fatal(err)
	}
	var answer string
	run(t, ctx, "cross-site post", chromedp.Navigate(evil.URL),
		waitJS(`location.href.startsWith(`+strconv.Quote(e.url)+`)`),
		chromedp.Text("body", &answer, chromedp.ByQuery))
	if !strings.Contains(answer, `"error"`) || strings.Contains(answer, `"routed"`) {
		t.Fatalf("the cross-site post was answered %q", answer)
	}
	after, err := e.c.Queue(context.Background(), "/", "depth")
	if err != nil {
		t.Fatal(err)
	}
	if after.Messages != before.Messages {
		t.Fatalf("the cross-site post published: depth %d → %d", before.Messages, after.Messages)
	}

	// A monitoring user, even one with permissions on the vhost, sees
	// the queue and its messages but gets no action, and the API refuses
	// an action forced from the page.
	if err := e.c.PutUser(context.Background(), "watcher", api.UserPut{Password: "watch", Tags: "monitoring"}); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Do(context.Background(), http.MethodPut, "/api/permissions/%2F/watcher", nil,
		map[string]string{"configure": ".*", "write": ".*", "read": ".*"}, nil); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "sign out", chromedp.Navigate(e.url+"/"), chromedp.WaitVisible("#logout", chromedp.ByID),
		chromedp.Click("#logout", chromedp.ByID), chromedp.WaitVisible(`input[name="username"]`, chromedp.ByQuery))
	login(t, ctx, e.url, "watcher", "watch")
	var buttons int
	run(t, ctx, "watcher's queue page", chromedp.Navigate(e.url+"/queues/%2F/payments.dlq"),
		waitJS(`document.querySelectorAll('table.messages tbody tr').length === 5`),
		chromedp.Evaluate(`document.querySelectorAll('[data-action], .actions-box, form.edit, table.messages input[type=checkbox]').length`, &buttons))
	if buttons != 0 {
		t.Fatalf("a monitoring user sees %d action controls", buttons)
	}
	for _, pg := range []struct{ path, ready string }{
		{"/queues", `document.querySelector('table.queues tr[data-queue="orders"]')`},
		{"/exchanges", `document.querySelector('tr[data-exchange="amq.topic"]')`},
		{"/connections", `document.querySelector('section.conn')`},
		{"/queues/%2F/payments.dlq/messages/" + firstID(t, e, "payments.dlq"), `document.querySelector('ol.deaths li')`},
	} {
		run(t, ctx, "watcher's "+pg.path, chromedp.Navigate(e.url+pg.path), waitJS(pg.ready),
			chromedp.Evaluate(`document.querySelectorAll('[data-action], .actions-box, form.action, form.edit, button.danger').length`, &buttons))
		if buttons != 0 {
			t.Errorf("on %s a monitoring user sees %d action controls", pg.path, buttons)
		}
	}
	var usersNav bool
	var usersPage string
	run(t, ctx, "watcher's users page", chromedp.Navigate(e.url+"/users"),
		waitJS(`document.querySelector('main .state.empty')`),
		chromedp.Evaluate(`!document.querySelector('[data-nav="users"]').hidden`, &usersNav),
		chromedp.Text("main", &usersPage, chromedp.ByQuery))
	if usersNav || !strings.Contains(usersPage, "Only administrators") || strings.Contains(usersPage, "guest") {
		t.Errorf("a monitoring user's users page (link shown: %v): %q", usersNav, usersPage)
	}
	// Actions forced from the page, with a valid CSRF token: refused.
	for _, f := range []struct{ what, method, path, body string }{
		{"purge", "DELETE", "/api/queues/%2F/payments.dlq/contents", ""},
		{"redrive", "POST", "/api/queues/%2F/payments.dlq/redrive", `{}`},
		{"delete a message", "DELETE", "/api/queues/%2F/payments.dlq/messages/" + firstID(t, e, "payments.dlq"), ""},
		{"list users", "GET", "/api/users", ""},
	} {
		var forced string
		run(t, ctx, "force "+f.what, chromedp.Evaluate(`(async () => {
			const s = await (await fetch('/api/session')).json();
			const init = {method: `+strconv.Quote(f.method)+`, headers: {'X-CSRF-Token': s.csrf_token, 'Content-Type': 'application/json'}};
			if (`+strconv.Quote(f.body)+`) init.body = `+strconv.Quote(f.body)+`;
			const r = await fetch(`+strconv.Quote(f.path)+`, init);
			return r.status + ' ' + (await r.text());
		})()`, &forced, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
		if !strings.HasPrefix(forced, "403 ") {
			t.Errorf("a monitoring user's forced %s was answered %q", f.what, forced)
		}
	}
	waitDepth(t, e, "payments.dlq", 5)
}

// firstID returns the id of the queue's first message, as a string.
func firstID(t *testing.T, e *env, q string) string {
	t.Helper()
	page, err := e.c.Browse(context.Background(), "/", q, 0, 1, api.Filter{})
	if err != nil || len(page.Messages) == 0 {
		t.Fatalf("browse %s: %v (%d messages)", q, err, len(page.Messages))
	}
	return strconv.FormatUint(page.Messages[0].ID, 10)
}
