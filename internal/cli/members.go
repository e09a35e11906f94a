package cli

import (
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/sluicemq/sluice/internal/api"
)

// memberCommands are `sluice cluster add|remove` (the cluster's nodes)
// and `sluice queue grow|shrink` (RabbitMQ's rabbitmq-queues grow and
// shrink): add a node as a member of quorum queues that lack it, or
// remove it from those that have it, one queue (one membership change)
// at a time.
func memberCommands() []*command {
	var all bool
	allFlag := func(fs *flag.FlagSet) {
		fs.BoolVar(&all, "all", false, "every quorum queue of the vhost")
	}
	run := func(grow bool) func(e *env, a []string) error {
		return func(e *env, a []string) error {
			if ok := !all && len(a) == 2 || all && len(a) == 1; !ok {
				return usagef("want NODE and a QUEUE, or NODE and --all")
			}
			node := a[0]
			var names []string
			if all {
				qs, err := e.client.Queues(e.ctx, e.vhost)
				if err != nil {
					return err
				}
				for _, q := range qs {
					if q.Type == "quorum" && slices.Contains(q.Members, node) != grow {
						names = append(names, q.Name)
					}
				}
			} else {
				names = []string{a[1]}
			}
			verb := "grown onto"
			if !grow {
				verb = "shrunk off"
			}
			for _, name := range names {
				var err error
				if grow {
					err = e.client.Do(e.ctx, "POST", api.Path("queues", e.vhost, name, "members"), nil, map[string]string{"node": node}, nil)
				} else {
					err = e.client.Do(e.ctx, "DELETE", api.Path("queues", e.vhost, name, "members", node), nil, nil, nil)
				}
				if err != nil {
					return fmt.Errorf("queue %s: %w", name, err)
				}
				if err := e.done("queue %s %s %s", name, verb, node); err != nil {
					return err
				}
			}
			if len(names) == 0 {
				return e.done("no quorum queue to change")
			}
			return nil
		}
	}
	return []*command{
		{
			usage: "cluster add NAME=HOST:PORT",
			help: `Add a node to the cluster: its name (its --node) and its cluster address.
Then start it with --join and a --cluster list naming it and the members.
It becomes a learner of every quorum queue (grow queues onto it with
sluice queue grow). The node list is kept in every node's store and wins
over --cluster at a restart.`,
			run: func(e *env, a []string) error {
				name, addr, ok := strings.Cut(strings.Join(a, ""), "=")
				if len(a) != 1 || !ok || name == "" || addr == "" {
					return usagef("want NAME=HOST:PORT")
				}
				if err := e.client.Do(e.ctx, "POST", api.Path("nodes"), nil, map[string]string{"name": name, "address": addr}, nil); err != nil {
					return err
				}
				return e.done("node %s added at %s; start it with --join", name, addr)
			},
		},
		{
			usage: "cluster remove NAME",
			help: `Remove a node from the cluster: from every quorum queue's members first,
then from the node list. Ask another node than the one removed.`,
			run: func(e *env, a []string) error {
				if len(a) != 1 {
					return usagef("want one node name")
				}
				if err := e.client.Do(e.ctx, "DELETE", api.Path("nodes", a[0]), nil, nil, nil); err != nil {
					return err
				}
				return e.done("node %s removed", a[0])
			},
		},
		{
			usage: "queue grow NODE [QUEUE]",
			help: `Make NODE a member of a quorum queue (or, with --all, of every quorum queue
of the vhost that lacks it). The new member catches up from the leader's
log or a snapshot; it counts for confirms once it has. One queue at a time.`,
			flags: allFlag,
			run:   run(true),
		},
		{
			usage: "queue shrink NODE [QUEUE]",
			help: `Remove NODE from a quorum queue's members (or, with --all, from every quorum
queue of the vhost that has it). It keeps a copy as a non-voting learner,
so it still serves the queue through the leader. A queue's last member
cannot be removed.`,
			flags: allFlag,
			run:   run(false),
		},
	}
}
