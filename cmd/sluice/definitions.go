package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/sluicemq/sluice/internal/broker"
	"github.com/sluicemq/sluice/internal/httpapi"
)

// loadDefinitions imports a definitions file into b at boot (serve
// --load-definitions), through the HTTP API's importer, so the file is
// checked whole before anything changes; importing the same file at
// every boot changes nothing after the first.
func loadDefinitions(path string, b *broker.Broker, log *slog.Logger) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("load definitions: %w", err)
	}
	d, err := httpapi.DecodeDefinitions(raw)
	if err != nil {
		return fmt.Errorf("load definitions %s: %w", path, err)
	}
	cfg := httpapi.DefaultConfig()
	cfg.Logger, cfg.SampleInterval = log, 0
	hs, err := httpapi.New(cfg, b, nil)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Close(ctx)
	}()
	if err := hs.ImportDefinitions(d, "", "load-definitions"); err != nil {
		return fmt.Errorf("load definitions %s: %w", path, err)
	}
	log.Info("definitions loaded", "file", path, "queues", len(d.Queues), "exchanges", len(d.Exchanges),
		"bindings", len(d.Bindings), "policies", len(d.Policies))
	return nil
}
