package main

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluicemq/sluice/internal/amqpserver"
)

// amqpConfig is the AMQP server's configuration from cfg, its limits
// checked; BodyMemory is left for the memory limit.
func amqpConfig(cfg serveConfig, log *slog.Logger) (amqpserver.Config, error) {
	scfg := amqpserver.DefaultConfig()
	scfg.Logger = log
	scfg.Addr = cfg.AMQP
	scfg.Version = version
	var err error
	if scfg.MaxConnections, err = maxConnections(cfg.MaxConnections, log); err != nil {
		return scfg, err
	}
	if scfg.MaxMessageSize, err = parseSize(cfg.MaxMessageSize, 0); err != nil || scfg.MaxMessageSize == 0 {
		return scfg, fmt.Errorf("max message size %q: want a size such as 128MiB", cfg.MaxMessageSize)
	}
	out, err := parseSize(cfg.ConnectionOutputLimit, 0)
	if err != nil || out == 0 || out > 1<<30 {
		return scfg, fmt.Errorf("--connection-output-limit %q: want a size from 1B to 1GiB, such as 1MiB", cfg.ConnectionOutputLimit)
	}
	scfg.MaxOutputBytes = int(out)
	if scfg.WriteTimeout, err = time.ParseDuration(cfg.WriteTimeout); err != nil || scfg.WriteTimeout <= 0 {
		return scfg, fmt.Errorf("--write-timeout %q: want a positive duration, such as 30s", cfg.WriteTimeout)
	}
	return scfg, nil
}

// fdReserve is the file descriptors an automatic --max-connections leaves
// to the rest of the broker: Pebble keeps up to 1,000 table files open
// (its default MaxOpenFiles), the HTTP server up to 1,024 connections, and
// the write-ahead log, listeners, cluster peers and log files a few more.
const fdReserve = 2048

// minAutoConnections is the least an automatic --max-connections allows,
// however low the descriptor limit: a broker no client can reach is no
// safer than one that runs out of descriptors.
const minAutoConnections = 64

// maxConnections reads --max-connections: a number, 0 for no bound, or
// "auto" (the default, also ""), which derives the bound from the
// process's file descriptor limit (autoMaxConnections) and logs it.
func maxConnections(v string, log *slog.Logger) (int, error) {
	if v = strings.TrimSpace(v); v != "" && v != "auto" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("--max-connections %q: want a number, auto, or 0 for no bound", v)
		}
		return n, nil
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("cannot read the file descriptor limit; AMQP connections are not bounded (set --max-connections)", "err", err)
		return 0, nil
	}
	n := autoMaxConnections(lim.Cur)
	if n == minAutoConnections {
		log.Warn("the file descriptor limit is low: AMQP connections are bounded to the minimum; raise the limit (ulimit -n, LimitNOFILE=) or set --max-connections",
			"max_connections", n, "fd_limit", lim.Cur)
	} else {
		log.Info("amqp connections bounded by the file descriptor limit", "max_connections", n, "fd_limit", lim.Cur)
	}
	return n, nil
}

// autoMaxConnections is the connection bound for a descriptor limit of
// nofile: half of what fdReserve leaves, because under a bound N up to 2N
// sockets may be open (those in their handshake count up to there; see
// amqpserver.Server), and at least minAutoConnections.
func autoMaxConnections(nofile uint64) int {
	if nofile <= fdReserve+2*minAutoConnections {
		return minAutoConnections
	}
	return int(min((nofile-fdReserve)/2, 1<<30))
}
