package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sluicemq/sluice/internal/api"
)

func healthCommands() []*command {
	return []*command{{
		usage: "health [CHECK]",
		help: `Run one of RabbitMQ's health checks against the broker and exit 0 when it
passes, 1 when it fails: virtual-hosts (the default: the broker is up and
serving), alarms, local-alarms, port-listener/PORT, protocol-listener/NAME,
node-is-quorum-critical. The container image's HEALTHCHECK runs it.`,
		run: func(e *env, a []string) error {
			check := "virtual-hosts"
			if len(a) > 1 {
				return usagef("want at most one check")
			}
			if len(a) == 1 {
				check = a[0]
			}
			var h api.Health
			err := e.client.Do(e.ctx, "GET", "/api/health/checks/"+strings.TrimPrefix(check, "/"), nil, nil, &h)
			var ae *api.Error
			if errors.As(err, &ae) && ae.Status == 503 {
				// The body is the check's {"status":"failed","reason":…}.
				if json.Unmarshal([]byte(ae.Reason), &h) == nil && h.Reason != "" {
					b, _ := json.Marshal(h)
					return fmt.Errorf("health check %s failed: %s (%s)", check, h.Reason, b)
				}
				return fmt.Errorf("health check %s failed: %s", check, ae.Reason)
			}
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(h)
			}
			return e.done("health check %s: %s", check, h.Status)
		},
	}}
}
