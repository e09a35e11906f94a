// Command polling shows the polling pattern end to end on Sluice: a web
// handler accepts a request and enqueues a job; a worker submits the job to
// a slow service (a local fake) and then polls for its result by
// republishing the job with x-delay until the service says it is done;
// after a number of attempts the job is rejected and lands, with its
// history, in a dead-letter queue.
//
//	go run ./examples/polling                 # against amqp://guest:guest@127.0.0.1:5672/
//	AMQP_URL=amqp://… go run ./examples/polling
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const (
	jobsQueue = "polling.jobs"
	deadQueue = "polling.jobs.dead"
)

// settings tune the example (the test shortens the waits).
type settings struct {
	pollEvery   time.Duration // x-delay between two polls of one job
	maxAttempts int           // polls before a job is given up
}

func main() {
	url := os.Getenv("AMQP_URL")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
	}
	if err := run(url, os.Stdout, settings{pollEvery: time.Second, maxAttempts: 5}); err != nil {
		log.Fatal(err)
	}
}

// run submits two jobs through the web handler: "quick" finishes after a
// few polls, "stuck" never does and is dead-lettered. It returns once both
// are settled, after printing the dead letter.
func run(url string, out io.Writer, s settings) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	// Rejected jobs go through the default exchange to the dead queue.
	if _, err := ch.QueueDeclare(deadQueue, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare %s: %w", deadQueue, err)
	}
	if _, err := ch.QueueDeclare(jobsQueue, true, false, false, false, amqp.Table{
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": deadQueue,
	}); err != nil {
		return fmt.Errorf("declare %s: %w", jobsQueue, err)
	}
	if _, err := ch.QueuePurge(jobsQueue, false); err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	if _, err := ch.QueuePurge(deadQueue, false); err != nil {
		return fmt.Errorf("purge: %w", err)
	}

	svc := newSlowService(map[string]int{"quick": 2}) // "quick" is done at its 3rd poll
	svcURL, stopSvc, err := serve(svc)
	if err != nil {
		return err
	}
	defer stopSvc()
	webURL, stopWeb, err := serve(submitHandler(ch))
	if err != nil {
		return err
	}
	defer stopWeb()

	results := make(chan string, 2)
	w := &worker{conn: conn, svcURL: svcURL, s: s, out: out, results: results}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.start(ctx); err != nil {
		return err
	}
	defer w.wg.Wait()  // the consumer loop ends once the connection is closed,
	defer conn.Close() // which this closes first
	defer cancel()
	for _, task := range []string{"quick", "stuck"} {
		resp, err := http.Post(webURL+"/submit?task="+task, "text/plain", nil)
		if err != nil {
			return fmt.Errorf("submit %s: %w", task, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("submit %s: %s", task, resp.Status)
		}
		fmt.Fprintf(out, "web: accepted %s\n", task)
	}
	for range 2 {
		select {
		case r := <-results:
			fmt.Fprintln(out, r)
		case <-ctx.Done():
			return fmt.Errorf("jobs not settled: %w", ctx.Err())
		}
	}
	return printDeadLetter(ctx, ch, out)
}

// serve runs h on 127.0.0.1 until stop is called.
func serve(h http.Handler) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { srv.Close(); wg.Wait() }, nil
}

// submitHandler enqueues a job per POST /submit?task=NAME. The channel is
// shared, so publishes are serialized.
func submitHandler(ch *amqp.Channel) http.Handler {
	var mu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("POST /submit", func(w http.ResponseWriter, r *http.Request) {
		task := r.URL.Query().Get("task")
		if task == "" {
			http.Error(w, "task missing", http.StatusBadRequest)
			return
		}
		mu.Lock()
		err := ch.PublishWithContext(r.Context(), "", jobsQueue, false, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, Body: []byte(task), Headers: amqp.Table{"attempt": int32(0)},
		})
		mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	return mux
}

// slowService is the fake slow backend: POST /work?task= starts work and
// returns an id; GET /work?task= answers "pending" until the task's polls
// are used up, then "done: …".
type slowService struct {
	mu      sync.Mutex
	pending map[string]int // task -> polls left before done (absent: never)
	polls   map[string]int
}

func newSlowService(pending map[string]int) *slowService {
	return &slowService{pending: pending, polls: make(map[string]int)}
}

func (s *slowService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	task := r.URL.Query().Get("task")
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.Method {
	case http.MethodPost:
		fmt.Fprint(w, "id-"+task)
	case http.MethodGet:
		s.polls[task]++
		left, ok := s.pending[task]
		if ok && s.polls[task] > left {
			fmt.Fprintf(w, "done: %s after %d polls", task, s.polls[task])
			return
		}
		fmt.Fprint(w, "pending")
	}
}

// worker consumes jobs: the first delivery submits the job, later ones
// poll; not done yet means "publish again with x-delay, ack this one".
type worker struct {
	conn    *amqp.Connection
	svcURL  string
	s       settings
	out     io.Writer
	results chan<- string
	wg      sync.WaitGroup
}

func (w *worker) start(ctx context.Context) error {
	ch, err := w.conn.Channel()
	if err != nil {
		return fmt.Errorf("worker channel: %w", err)
	}
	if err := ch.Qos(1, 0, false); err != nil {
		return fmt.Errorf("qos: %w", err)
	}
	ds, err := ch.Consume(jobsQueue, "worker", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for d := range ds { // ends when the connection closes
			if err := w.handle(ctx, ch, d); err != nil {
				fmt.Fprintf(w.out, "worker: %v\n", err)
			}
		}
	}()
	return nil
}

func (w *worker) report(s string) {
	select {
	case w.results <- s:
	default: // nobody waits any more
	}
}

func (w *worker) handle(ctx context.Context, ch *amqp.Channel, d amqp.Delivery) error {
	task := string(d.Body)
	attempt, _ := d.Headers["attempt"].(int32)
	method := http.MethodGet
	if attempt == 0 {
		method = http.MethodPost // submit first
	}
	req, _ := http.NewRequestWithContext(ctx, method, w.svcURL+"/work?task="+task, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return d.Nack(false, true)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	status := string(body)
	switch {
	case method == http.MethodGet && status != "pending":
		w.report("worker: " + status)
		return d.Ack(false)
	case int(attempt) >= w.s.maxAttempts:
		// Give up: the job dead-letters with reason rejected.
		w.report(fmt.Sprintf("worker: %s still pending after %d polls, rejected", task, attempt))
		return d.Nack(false, false)
	}
	// Not done yet: ask again later. The copy carries its attempt count
	// and is delayed by the broker; then the original is acked.
	err = ch.PublishWithContext(ctx, "", jobsQueue, false, false, amqp.Publishing{
		DeliveryMode: amqp.Persistent, Body: d.Body,
		Headers: amqp.Table{"attempt": attempt + 1, "x-delay": w.s.pollEvery.Milliseconds()},
	})
	if err != nil {
		return err
	}
	return d.Ack(false)
}

// printDeadLetter prints the dead letter and its history.
func printDeadLetter(ctx context.Context, ch *amqp.Channel, out io.Writer) error {
	for {
		d, ok, err := ch.Get(deadQueue, false)
		if err != nil {
			return fmt.Errorf("get dead letter: %w", err)
		}
		if ok {
			fmt.Fprintf(out, "dead letter: %s\n", d.Body)
			printTable(out, "  ", d.Headers)
			return d.Ack(false)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no dead letter: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func printTable(out io.Writer, indent string, t amqp.Table) {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch v := t[k].(type) {
		case []any:
			fmt.Fprintf(out, "%s%s:\n", indent, k)
			for _, e := range v {
				if tt, ok := e.(amqp.Table); ok {
					fmt.Fprintf(out, "%s  -\n", indent)
					printTable(out, indent+"    ", tt)
				} else {
					fmt.Fprintf(out, "%s  - %v\n", indent, e)
				}
			}
		case time.Time:
			fmt.Fprintf(out, "%s%s: %s\n", indent, k, v.UTC().Format(time.RFC3339))
		case string:
			fmt.Fprintf(out, "%s%s: %s\n", indent, k, strconv.Quote(v))
		default:
			fmt.Fprintf(out, "%s%s: %v\n", indent, k, v)
		}
	}
}
