package api

// Health is the answer of /api/health/checks/* and /api/aliveness-test, as
// RabbitMQ's: status "ok" (HTTP 200) or "failed" (HTTP 503) with a reason
// and what failed.
type Health struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	// Alarms lists the alarms in effect (alarms, local-alarms).
	Alarms []Alarm `json:"alarms,omitempty"`
	// Port and Protocol echo what port-listener and protocol-listener
	// checked; Missing is what they did not find, Ports and Protocols what
	// is listening.
	Port      int      `json:"port,omitempty"`
	Protocol  string   `json:"protocol,omitempty"`
	Missing   any      `json:"missing,omitempty"`
	Ports     []int    `json:"ports,omitempty"`
	Protocols []string `json:"protocols,omitempty"`
	// VirtualHosts lists the vhosts that are down (virtual-hosts).
	VirtualHosts []string `json:"virtual-hosts,omitempty"`
	// Queues lists the queues that would lose their quorum
	// (node-is-quorum-critical).
	Queues []string `json:"queues,omitempty"`
}

// Alarm is one resource alarm in effect on a node.
type Alarm struct {
	Node     string `json:"node"`
	Resource string `json:"resource"` // "memory", "disk" or "store"
	// Reason says what failed (the store alarm: why writes are refused).
	Reason string `json:"reason,omitempty"`
}

// Node is GET /api/nodes/{name}: the fields of RabbitMQ's node object that
// monitoring reads.
type Node struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Running bool   `json:"running"`
	// MetadataLeader marks the node leading the cluster's metadata group
	// (Sluice's field, in a cluster only).
	MetadataLeader bool   `json:"metadata_leader,omitempty"`
	MemUsed        uint64 `json:"mem_used"`
	MemLimit       uint64 `json:"mem_limit"`
	MemAlarm       bool   `json:"mem_alarm"`
	DiskFree       uint64 `json:"disk_free"`
	DiskFreeLimit  uint64 `json:"disk_free_limit"`
	DiskFreeAlarm  bool   `json:"disk_free_alarm"`
	// StoreAlarm is raised when the message store failed (a full or
	// failing disk, the data directory deleted) and the broker refuses
	// writes until it is restarted; StoreAlarmReason says why.
	StoreAlarm       bool   `json:"store_alarm"`
	StoreAlarmReason string `json:"store_alarm_reason,omitempty"`
	FDUsed           int    `json:"fd_used"`
	FDTotal          int64  `json:"fd_total"`
	SocketsUsed      int    `json:"sockets_used"`
	SocketsTotal     int64  `json:"sockets_total"`
	Processors       int    `json:"processors"`
	// Uptime is in milliseconds, as RabbitMQ's.
	Uptime int64 `json:"uptime"`
	// Listeners are the node's protocol listeners.
	Listeners []Listener `json:"listeners"`
}
