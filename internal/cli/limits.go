package cli

// sluice limits ls|set|delete: RabbitMQ's user limits (max-connections,
// max-channels) and vhost limits (max-connections, max-queues), as
// rabbitmqctl set_user_limits and set_vhost_limits set them.

import (
	"flag"
	"fmt"
	"strconv"

	"github.com/sluicemq/sluice/internal/api"
)

// limitEntry is one user's or vhost's limits as the API lists them.
type limitEntry struct {
	User  string           `json:"user,omitempty"`
	VHost string           `json:"vhost,omitempty"`
	Value map[string]int64 `json:"value"`
}

func limitsCommands() []*command {
	var user string
	target := func(fs *flag.FlagSet) {
		fs.StringVar(&user, "for-user", "", "a user's limits instead of the vhost's (--vhost)")
	}
	// path is the API path of the limits set on --for-user or --vhost.
	path := func(e *env, name ...string) string {
		if user != "" {
			return api.Path(append([]string{"user-limits", user}, name...)...)
		}
		return api.Path(append([]string{"vhost-limits", e.vhost}, name...)...)
	}
	return []*command{
		{
			usage: "limits ls",
			help:  "List the vhost's limits, or a user's with --for-user.",
			flags: target,
			run: func(e *env, _ []string) error {
				var ls []limitEntry
				if err := e.client.Do(e.ctx, "GET", path(e), nil, nil, &ls); err != nil {
					return err
				}
				return e.out(ls, func() {
					var rows [][]string
					for _, l := range ls {
						for _, k := range sortedKeys(l.Value) {
							rows = append(rows, []string{l.User + l.VHost, k, strconv.FormatInt(l.Value[k], 10)})
						}
					}
					e.table([]string{"ON", "LIMIT", "VALUE"}, rows)
				})
			},
		},
		{
			usage: "limits set NAME VALUE",
			help: "Set a limit: max-connections or max-queues of the vhost, max-connections or\n" +
				"max-channels of a user (--for-user). A negative VALUE means no limit, 0 allows none.\n" +
				"Example: sluice limits set max-connections 100 --for-user orders-service",
			flags: target,
			run: func(e *env, a []string) error {
				if len(a) != 2 {
					return usagef("want a limit name and a value")
				}
				n, err := strconv.ParseInt(a[1], 10, 64)
				if err != nil {
					return usagef("value %q: want an integer", a[1])
				}
				if err := e.client.Do(e.ctx, "PUT", path(e, a[0]), nil, map[string]int64{"value": n}, nil); err != nil {
					return err
				}
				return e.done("limit %s of %s set to %d", a[0], limitOwner(e, user), n)
			},
		},
		{
			usage: "limits delete NAME",
			help:  "Clear a limit of the vhost, or of a user with --for-user.",
			flags: target,
			run: func(e *env, a []string) error {
				if len(a) != 1 {
					return usagef("want a limit name")
				}
				if err := e.client.Do(e.ctx, "DELETE", path(e, a[0]), nil, nil, nil); err != nil {
					return err
				}
				return e.done("limit %s of %s cleared", a[0], limitOwner(e, user))
			},
		},
	}
}

func limitOwner(e *env, user string) string {
	if user != "" {
		return fmt.Sprintf("user %s", user)
	}
	return fmt.Sprintf("vhost %s", e.vhost)
}
