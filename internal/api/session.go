package api

import "time"

// Session is GET /api/session: who is signed in to the console, what the
// console offers them, and the CSRF token its state-changing requests
// carry in X-CSRF-Token (empty under basic auth, which needs none).
type Session struct {
	Name      string   `json:"name"`
	Tags      []string `json:"tags"`
	CanManage bool     `json:"can_manage"`
	IsAdmin   bool     `json:"is_admin"`
	CSRFToken string   `json:"csrf_token"`
	Version   string   `json:"version"`
}

// DeadLetterQueue is an element of GET /api/dead-letters: a queue holding
// messages with an x-death history, counted by their newest death.
type DeadLetterQueue struct {
	VHost       string         `json:"vhost"`
	Name        string         `json:"name"`
	Messages    int            `json:"messages"`
	DeadLetters int            `json:"dead_letters"`
	ByReason    map[string]int `json:"by_reason"`
	BySource    map[string]int `json:"by_source"`
	// Newest is the message that died last.
	Newest *DeadLetterNewest `json:"newest,omitempty"`
	// Complete is false when the queue is too long to count in full: the
	// counts are of its first dead letters only.
	Complete bool `json:"complete"`
}

// DeadLetterNewest is the newest failure in a dead-letter queue.
type DeadLetterNewest struct {
	ID     uint64    `json:"id"`
	Reason string    `json:"reason"`
	Source string    `json:"source"`
	Time   time.Time `json:"time"`
}

// SchemaCheck is the body of POST /api/schemas/{vhost}/{name}/validate.
type SchemaCheck struct {
	Payload         string `json:"payload"`
	PayloadEncoding string `json:"payload_encoding,omitempty"` // string (default) or base64
}

// SchemaChecked answers a body that passes.
type SchemaChecked struct {
	Valid bool `json:"valid"`
}
