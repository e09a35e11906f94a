package amqpserver

// Log attribute keys, defined once so every line of this package uses the
// same names.
const (
	logConn    = "conn"
	logRemote  = "remote"
	logUser    = "user"
	logVHost   = "vhost"
	logChannel = "channel"
	logMethod  = "method"
	logCode    = "code"
	logReason  = "reason"
	logErr     = "err"
	logFrame   = "frame_type"
	logSize    = "size"
)
