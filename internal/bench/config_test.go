package bench

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigIsValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v, want nil", err)
	}
	// The brief's defaults: one persistent 1 KiB publisher, 256 confirms
	// outstanding, 10 s, a 1,000,000-message backlog.
	if c.Publishers != 1 || c.MessageSize != 1024 || !c.Persistent || c.Confirms != 256 ||
		c.Duration != 10*time.Second || c.Backlog != 1_000_000 || c.Scenario != ScenarioPublish {
		t.Errorf("DefaultConfig() = %+v, not the documented defaults", c)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string // substring of the error; "" for valid
	}{
		{"backlog", func(c *Config) { c.Scenario = ScenarioBacklog }, ""},
		{"churn", func(c *Config) { c.Scenario = ScenarioChurn }, ""},
		{"amqps", func(c *Config) { c.URL = "amqps://u:p@example.com:5671/vh" }, ""},
		{"no confirms", func(c *Config) { c.Confirms = 0 }, ""},
		{"multi-ack equal to prefetch", func(c *Config) { c.MultiAck, c.Prefetch = 256, 256 }, ""},
		{"multi-ack with unlimited prefetch", func(c *Config) { c.MultiAck, c.Prefetch = 1000, 0 }, ""},
		{"minimum size", func(c *Config) { c.MessageSize = 16 }, ""},
		{"http url", func(c *Config) { c.URL = "http://127.0.0.1:15672/" }, "scheme must be amqp"},
		{"url without host", func(c *Config) { c.URL = "amqp:///" }, "no host"},
		{"bad url", func(c *Config) { c.URL = "amqp://[::1" }, "url"},
		{"batching client", func(c *Config) { c.Client = ClientBatching }, ""},
		{"unknown client", func(c *Config) { c.Client = "pika" }, `client "pika"`},
		{"unknown scenario", func(c *Config) { c.Scenario = "soak" }, `scenario "soak"`},
		{"empty queue name", func(c *Config) { c.Queue = "" }, "queue name"},
		{"long queue name", func(c *Config) { c.Queue = strings.Repeat("q", 256) }, "queue name"},
		{"no publishers", func(c *Config) { c.Publishers = 0 }, "publishers 0"},
		{"too many publishers", func(c *Config) { c.Publishers = maxWorkers + 1 }, "publishers"},
		{"negative consumers", func(c *Config) { c.Consumers = -1 }, "consumers -1"},
		{"tiny message", func(c *Config) { c.MessageSize = 15 }, "message size 15"},
		{"negative confirms", func(c *Config) { c.Confirms = -1 }, "confirms -1"},
		{"prefetch too big", func(c *Config) { c.Prefetch = 70000 }, "prefetch 70000"},
		{"multi-ack above prefetch", func(c *Config) { c.MultiAck, c.Prefetch = 300, 256 }, "exceeds prefetch"},
		{"negative multi-ack", func(c *Config) { c.MultiAck = -2 }, "multi-ack -2"},
		{"churn without requeues", func(c *Config) { c.Scenario, c.Requeues = ScenarioChurn, 0 }, "churn needs requeues"},
		{"negative requeues", func(c *Config) { c.Requeues = -1 }, "requeues -1"},
		{"negative messages", func(c *Config) { c.Messages = -5 }, "messages -5"},
		{"empty backlog", func(c *Config) { c.Scenario, c.Backlog = ScenarioBacklog, 0 }, "backlog 0"},
		{"zero duration", func(c *Config) { c.Duration = 0 }, "duration"},
		{"negative pid", func(c *Config) { c.PID = -1 }, "pid -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.change(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Validate() = nil, want an error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Validate() = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := DefaultConfig()
	c.Publishers, c.MessageSize, c.Duration = 0, 1, -time.Second
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	for _, want := range []string{"publishers 0", "message size 1", "duration"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, missing %q", err, want)
		}
	}
}

func TestValidateHidesPassword(t *testing.T) {
	c := DefaultConfig()
	c.URL = "http://user:secret@127.0.0.1/"
	if err := c.Validate(); err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("Validate() = %v, want an error without the password", err)
	}
}

func TestConsumersPerScenario(t *testing.T) {
	tests := []struct {
		scenario  string
		consumers int
		want      int
	}{
		{ScenarioPublish, 0, 0},
		{ScenarioPublish, 3, 3},
		{ScenarioBacklog, 0, 1},
		{ScenarioChurn, 0, 1},
		{ScenarioChurn, 4, 4},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		c.Scenario, c.Consumers = tt.scenario, tt.consumers
		if got := c.consumers(); got != tt.want {
			t.Errorf("%s with Consumers=%d: consumers() = %d, want %d", tt.scenario, tt.consumers, got, tt.want)
		}
	}
}

func TestFlags(t *testing.T) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	Flags(fs, &c)
	args := []string{
		"--url", "amqp://a:b@127.0.0.1:5681/", "--scenario", "backlog", "--queue", "q1",
		"--queue-type", "quorum", "--keep", "--publishers", "2", "--consumers", "3",
		"--size", "4096", "--persistent=false", "--confirms", "64", "--prefetch", "100",
		"--multi-ack", "10", "--requeues", "5", "--messages", "7", "--backlog", "2000",
		"--duration", "20s", "--pid", "42", "--json", "--client", "batching",
	}
	if err := fs.Parse(args); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Config{
		URL: "amqp://a:b@127.0.0.1:5681/", Scenario: ScenarioBacklog, Queue: "q1", QueueType: "quorum",
		Keep: true, Client: ClientBatching, Publishers: 2, Consumers: 3, MessageSize: 4096, Persistent: false, Confirms: 64,
		Prefetch: 100, MultiAck: 10, Requeues: 5, Messages: 7, Backlog: 2000,
		Duration: 20 * time.Second, PID: 42, JSON: true,
	}
	if c != want {
		t.Errorf("after parsing flags:\n got %+v\nwant %+v", c, want)
	}
}

func TestFlagsKeepDefaults(t *testing.T) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	Flags(fs, &c)
	if err := fs.Parse(nil); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c != DefaultConfig() {
		t.Errorf("parsing no flags changed the config to %+v", c)
	}
}
