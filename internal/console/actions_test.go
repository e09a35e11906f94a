//go:build integration

package console_test

// The console's actions, each done the way a person does it: declare a
// queue, publish test messages (one with x-delay), filter by state,
// delete one, a selection and all that match, purge by typing the
// queue's name, close a connection, declare an exchange, bind, delete
// the exchange and the queue. Each is checked through the API.

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/sluicetest"
)

// toastSays waits for a toast containing text.
func toastSays(text string) chromedp.Action {
	return waitJS(`[...document.querySelectorAll('#toast .toast')].some((t) => t.textContent.includes(` + strconv.Quote(text) + `))`)
}

// confirm presses the open dialog's confirm button and waits for it to go.
func confirm() chromedp.Action {
	return chromedp.Tasks{
		chromedp.WaitVisible(`dialog[open] button[type="submit"]`, chromedp.ByQuery),
		chromedp.Click(`dialog[open] button[type="submit"]`, chromedp.ByQuery),
		waitJS(`!document.querySelector('dialog[open]')`),
	}
}

// rows waits until the message table shows exactly n rows.
func rows(n int) chromedp.Action {
	return waitJS(`document.querySelectorAll('table.messages tbody tr').length === ` + strconv.Itoa(n))
}

// idsOf returns the ids of the queue's messages whose body contains text.
func idsOf(t *testing.T, e *env, q, text string) []uint64 {
	t.Helper()
	page, err := e.c.Browse(context.Background(), "/", q, 0, 100, api.Filter{Body: text})
	if err != nil {
		t.Fatalf("browse %s: %v", q, err)
	}
	var ids []uint64
	for _, m := range page.Messages {
		ids = append(ids, m.ID)
	}
	return ids
}

// redriveTo fills the open redrive dialog with a target queue, starts it
// and waits for its progress bar to say done.
func redriveTo(target string) chromedp.Action {
	return chromedp.Tasks{
		chromedp.WaitVisible(`dialog.redrive`, chromedp.ByQuery),
		chromedp.SendKeys(`dialog.redrive input[name="target"]`, target, chromedp.ByQuery),
		chromedp.Click(`button[data-action="start-redrive"]`, chromedp.ByQuery),
		waitJS(`(document.querySelector('section.task') || {dataset: {}}).dataset.state === 'done'`),
	}
}

func declareQueue(t *testing.T, e *env, name string) {
	t.Helper()
	if err := e.c.DeclareQueue(context.Background(), "/", name, api.QueueDeclare{}); err != nil {
		t.Fatalf("declare %s: %v", name, err)
	}
}

func TestConsoleActions(t *testing.T) {
	e := startEnv(t)
	ctx := browser(t)
	bg := context.Background()
	login(t, ctx, e.url, "guest", "guest")

	run(t, ctx, "declare a queue", chromedp.Navigate(e.url+"/queues"),
		waitJS(`document.querySelector('table.queues') || document.querySelector('.state.empty')`),
		chromedp.Click(`details.actions-box summary`, chromedp.ByQuery),
		chromedp.SendKeys(`form.declare-queue input[name="queue-name"]`, "scratch", chromedp.ByQuery),
		chromedp.SetValue(`form.declare-queue textarea[name="arguments"]`, `{"x-max-length": 100}`, chromedp.ByQuery),
		chromedp.Click(`form.declare-queue button[type="submit"]`, chromedp.ByQuery),
		waitJS(`location.pathname === '/queues/%2F/scratch' && document.getElementById('q-ready')`))
	q, err := e.c.Queue(bg, "/", "scratch")
	if err != nil || fmt.Sprint(q.Arguments["x-max-length"]) != "100" || !q.Durable {
		t.Fatalf("declared queue %+v (%v), want durable with x-max-length 100", q, err)
	}

	// Test messages from the queue page's form.
	run(t, ctx, "open the publish form", chromedp.Click(`details.actions-box summary`, chromedp.ByQuery),
		chromedp.WaitVisible(`form.publish`, chromedp.ByQuery))
	bodies := []string{"keep-1", "sel-1", "sel-2", "mov-1", "mov-2", "drop-1", "drop-2", "one-1", "red-1"}
	for i, b := range bodies {
		run(t, ctx, "publish "+b,
			chromedp.SetValue(`form.publish textarea[name="payload"]`, b, chromedp.ByQuery),
			chromedp.Click(`form.publish button[type="submit"]`, chromedp.ByQuery))
		waitDepth(t, e, "scratch", i+1)
	}
	run(t, ctx, "publish a delayed message",
		chromedp.SetValue(`form.publish textarea[name="payload"]`, "late-1", chromedp.ByQuery),
		chromedp.SetValue(`form.publish input[name="delay"]`, "3000", chromedp.ByQuery),
		chromedp.Click(`form.publish button[type="submit"]`, chromedp.ByQuery),
		toastSays("it becomes ready in 3000 ms"))
	if q, err := e.c.Queue(bg, "/", "scratch"); err != nil || q.Messages != len(bodies) {
		t.Fatalf("just after a publish with x-delay 3000 the queue holds %d (%v), want %d", q.Messages, err, len(bodies))
	}
	waitDepth(t, e, "scratch", len(bodies)+1)

	// A consumer holds the first message: the state filter finds it.
	conn, err := amqp.DialConfig(e.sb.URL(), amqp.Config{Properties: amqp.Table{"connection_name": "console-test"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	d, err := ch.Consume("scratch", "holder", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := <-d; string(m.Body) != "keep-1" {
		t.Fatalf("consumer got %q first", m.Body)
	}
	var unackedRow string
	run(t, ctx, "filter by state", chromedp.Navigate(e.url+"/queues/%2F/scratch?state=unacked"),
		rows(1), chromedp.Text(`table.messages tbody tr`, &unackedRow, chromedp.ByQuery),
		chromedp.Navigate(e.url+"/queues/%2F/scratch?state=ready"), rows(len(bodies)),
		chromedp.Navigate(e.url+"/queues/%2F/scratch?state=delayed"),
		waitJS(`(document.querySelector('.browser .state.empty') || {textContent: ''}).textContent.includes('No message matches this filter')`))
	if !strings.Contains(unackedRow, "keep-1") || !strings.Contains(unackedRow, "unacked") {
		t.Fatalf("the unacked filter shows %q", unackedRow)
	}

	// Redrive one from its page, then a selection, to a chosen queue.
	declareQueue(t, e, "scratch.moved")
	red := idsOf(t, e, "scratch", "red-1")
	run(t, ctx, "redrive one", chromedp.Navigate(fmt.Sprintf("%s/queues/%%2F/scratch/messages/%d", e.url, red[0])),
		chromedp.WaitVisible(`button[data-action="redrive-one"]`, chromedp.ByQuery),
		chromedp.Click(`button[data-action="redrive-one"]`, chromedp.ByQuery),
		redriveTo("scratch.moved"))
	waitDepth(t, e, "scratch.moved", 1)
	mov := idsOf(t, e, "scratch", "mov-")
	run(t, ctx, "redrive the selection", chromedp.Navigate(e.url+"/queues/%2F/scratch"), rows(len(bodies)),
		chromedp.Click(fmt.Sprintf(`tr[data-id="%d"] input[type="checkbox"]`, mov[0]), chromedp.ByQuery),
		chromedp.Click(fmt.Sprintf(`tr[data-id="%d"] input[type="checkbox"]`, mov[1]), chromedp.ByQuery),
		chromedp.Click(`button[data-action="redrive-selected"]`, chromedp.ByQuery),
		redriveTo("scratch.moved"))
	waitDepth(t, e, "scratch.moved", 3)
	if ids := idsOf(t, e, "scratch", "mov-"); len(ids) != 0 {
		t.Fatalf("redriven messages %v are still in scratch", ids)
	}

	// Delete one, from its own page.
	one := idsOf(t, e, "scratch", "one-1")
	run(t, ctx, "delete one", chromedp.Navigate(fmt.Sprintf("%s/queues/%%2F/scratch/messages/%d", e.url, one[0])),
		chromedp.WaitVisible(`button[data-action="delete-one"]`, chromedp.ByQuery),
		chromedp.Click(`button[data-action="delete-one"]`, chromedp.ByQuery), confirm(),
		toastSays(fmt.Sprintf("Deleted message #%d", one[0])), waitJS(`location.pathname === '/queues/%2F/scratch'`))
	if _, err := e.c.Message(bg, "/", "scratch", one[0]); api.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("the deleted message is still there: %v", err)
	}

	// Delete a selection.
	sel := idsOf(t, e, "scratch", "sel-")
	var count string
	run(t, ctx, "select two", chromedp.Navigate(e.url+"/queues/%2F/scratch"), rows(len(bodies)-3),
		chromedp.Click(fmt.Sprintf(`tr[data-id="%d"] input[type="checkbox"]`, sel[0]), chromedp.ByQuery),
		chromedp.Click(fmt.Sprintf(`tr[data-id="%d"] input[type="checkbox"]`, sel[1]), chromedp.ByQuery),
		chromedp.Text(`.selection .count`, &count, chromedp.ByQuery))
	if count != "2 selected" {
		t.Fatalf("the selection says %q", count)
	}
	run(t, ctx, "delete the selection", chromedp.Click(`button[data-action="delete-selected"]`, chromedp.ByQuery), confirm(),
		toastSays("Deleted 2 message(s)"), rows(len(bodies)-5))
	if ids := idsOf(t, e, "scratch", "sel-"); len(ids) != 0 {
		t.Fatalf("selected messages %v survived", ids)
	}

	// Delete all that match a filter.
	run(t, ctx, "delete matching", chromedp.Navigate(e.url+"/queues/%2F/scratch?body=drop"), rows(2),
		chromedp.Click(`button[data-action="delete-matching"]`, chromedp.ByQuery), confirm(),
		toastSays("Deleted 2 message(s)"))
	waitDepth(t, e, "scratch", 2) // keep-1 (unacked) and late-1

	// Purge: the button stays disabled until the name is typed.
	var early, wrong bool
	run(t, ctx, "purge", chromedp.Navigate(e.url+"/queues/%2F/scratch"), rows(2),
		chromedp.Click(`details.actions-box summary`, chromedp.ByQuery),
		chromedp.Click(`button[data-action="purge"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`dialog[open] input.confirm-type`, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector('dialog[open] button[type="submit"]').disabled`, &early),
		chromedp.SendKeys(`dialog[open] input.confirm-type`, "scratc", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector('dialog[open] button[type="submit"]').disabled`, &wrong),
		chromedp.SendKeys(`dialog[open] input.confirm-type`, "h", chromedp.ByQuery), shot(t, "purge-confirm"), confirm(),
		toastSays("Purged 1 message(s) from scratch"))
	if !early || !wrong {
		t.Fatalf("purge could be confirmed before the name was typed (empty: %v, partial: %v)", !early, !wrong)
	}
	if q, err := e.c.Queue(bg, "/", "scratch"); err != nil || q.MessagesReady != 0 || q.MessagesUnacknowledged != 1 {
		t.Fatalf("after the purge: ready %d unacked %d (%v), want 0 and 1", q.MessagesReady, q.MessagesUnacknowledged, err)
	}

	// Close the consumer's connection.
	run(t, ctx, "close a connection", chromedp.Navigate(e.url+"/connections"),
		waitJS(`[...document.querySelectorAll('section.conn')].some((s) => s.textContent.includes('console-test'))`),
		chromedp.Evaluate(`[...document.querySelectorAll('section.conn')].find((s) => s.textContent.includes('console-test')).querySelector('button[data-action="close-connection"]').click()`, nil),
		confirm(), toastSays("Closed "),
		waitJS(`![...document.querySelectorAll('section.conn')].some((s) => s.textContent.includes('console-test'))`))
	select {
	case err := <-closed:
		if err == nil || err.Code != amqp.ConnectionForced {
			t.Fatalf("the client saw the close as %v, want 320", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client's connection stayed open")
	}

	// A dead-letter queue fed by two queues: the dry run counts per
	// destination and moves nothing.
	declareQueue(t, e, "mixed.dlq")
	mix := sluicetest.Channel(t, e.sb.Dial(t))
	for i, src := range []string{"scratch", "scratch.moved", "scratch"} {
		h := amqp.Table{"x-death": []any{amqp.Table{"count": int64(1), "reason": "rejected", "queue": src,
			"time": time.Now(), "exchange": "", "routing-keys": []any{src}}}}
		if err := mix.PublishWithContext(bg, "", "mixed.dlq", false, false, amqp.Publishing{Headers: h, Body: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	waitDepth(t, e, "mixed.dlq", 3)
	var dry string
	run(t, ctx, "dry run to two queues", chromedp.Navigate(e.url+"/queues/%2F/mixed.dlq"), rows(3),
		chromedp.Click(`button[data-action="redrive-matching"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`dialog.redrive`, chromedp.ByQuery),
		chromedp.Click(`button[data-action="dry-run"]`, chromedp.ByQuery),
		waitJS(`(document.querySelector('.dry-run') || {textContent: ''}).textContent.includes('would move')`),
		chromedp.Text(`.dry-run`, &dry, chromedp.ByQuery),
		chromedp.Click(`dialog.redrive button:not([data-action])`, chromedp.ByQuery))
	if !strings.Contains(dry, "3 message(s) would move") || !strings.Contains(dry, "2 to queue 'scratch'") || !strings.Contains(dry, "1 to queue 'scratch.moved'") {
		t.Fatalf("the dry run says %q", dry)
	}
	waitDepth(t, e, "mixed.dlq", 3)

	// Declare an exchange, bind the queue to it, delete the exchange.
	var xrow string
	run(t, ctx, "declare an exchange", chromedp.Navigate(e.url+"/exchanges"),
		waitJS(`document.querySelector('tr[data-exchange="amq.topic"]')`),
		chromedp.SendKeys(`form.declare-exchange input[name="exchange-name"]`, "events", chromedp.ByQuery),
		chromedp.SetValue(`form.declare-exchange select[name="exchange-type"]`, "fanout", chromedp.ByQuery),
		chromedp.Click(`form.declare-exchange button[type="submit"]`, chromedp.ByQuery),
		toastSays("Declared exchange events"), waitJS(`document.querySelector('tr[data-exchange="events"]')`),
		chromedp.SendKeys(`form.bind input[name="bind-exchange"]`, "events", chromedp.ByQuery),
		chromedp.SendKeys(`form.bind input[name="bind-queue"]`, "scratch", chromedp.ByQuery),
		chromedp.SendKeys(`form.bind input[name="bind-key"]`, "k1", chromedp.ByQuery),
		chromedp.Click(`form.bind button[type="submit"]`, chromedp.ByQuery),
		toastSays("Bound scratch to events"),
		waitJS(`(document.querySelector('tr[data-exchange="events"]') || {textContent: ''}).textContent.includes('scratch')`),
		chromedp.Text(`tr[data-exchange="events"]`, &xrow, chromedp.ByQuery))
	if !strings.Contains(xrow, "fanout") || !strings.Contains(xrow, "→ queue scratch") || !strings.Contains(xrow, "k1") {
		t.Fatalf("the exchange's row says %q", xrow)
	}
	var bs []api.Binding
	if err := e.c.Do(bg, http.MethodGet, "/api/bindings/%2F/e/events/q/scratch", nil, nil, &bs); err != nil || len(bs) != 1 || bs[0].RoutingKey != "k1" {
		t.Fatalf("bindings events → scratch: %+v (%v)", bs, err)
	}
	run(t, ctx, "delete the exchange",
		chromedp.Click(`tr[data-exchange="events"] button[data-action="delete-exchange"]`, chromedp.ByQuery),
		chromedp.SendKeys(`dialog[open] input.confirm-type`, "events", chromedp.ByQuery), confirm(),
		toastSays("Deleted exchange events"),
		waitJS(`document.querySelector('tr[data-exchange="amq.topic"]') && !document.querySelector('tr[data-exchange="events"]')`))
	if err := e.c.Do(bg, http.MethodGet, "/api/exchanges/%2F/events", nil, nil, nil); api.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("the deleted exchange: %v", err)
	}

	// Delete the queue; its page then says so in words.
	run(t, ctx, "delete the queue", chromedp.Navigate(e.url+"/queues/%2F/scratch"),
		chromedp.Click(`details.actions-box summary`, chromedp.ByQuery),
		chromedp.Click(`button[data-action="delete-queue"]`, chromedp.ByQuery),
		chromedp.SendKeys(`dialog[open] input.confirm-type`, "scratch", chromedp.ByQuery), confirm(),
		toastSays("Deleted queue scratch"), waitJS(`location.pathname === '/queues'`))
	if _, err := e.c.Queue(bg, "/", "scratch"); api.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("the deleted queue: %v", err)
	}
	var gone string
	run(t, ctx, "a queue that is gone", chromedp.Navigate(e.url+"/queues/%2F/scratch"),
		waitJS(`document.querySelector('.state.error')`), chromedp.Text(`.state.error`, &gone, chromedp.ByQuery))
	if !strings.Contains(gone, "Could not load the queue") || !strings.Contains(gone, "scratch") {
		t.Fatalf("the page of a deleted queue says %q", gone)
	}
}
