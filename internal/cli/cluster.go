package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sluicemq/sluice/internal/api"
)

func clusterCommands() []*command {
	return []*command{{
		usage: "cluster status",
		help: `Show the cluster as the answering node sees it: every node, whether it is
reachable, how many quorum queues it leads and whether it leads the
metadata group (vhosts, users, exchanges, bindings, ...), then the vhost's quorum
queues with their leader, members and the members online.`,
		run: func(e *env, a []string) error {
			if len(a) != 0 {
				return usagef("cluster status takes no arguments")
			}
			var nodes []api.Node
			if err := e.client.Do(e.ctx, "GET", "/api/nodes", nil, nil, &nodes); err != nil {
				return err
			}
			qs, err := e.client.Queues(e.ctx, e.vhost)
			if err != nil {
				return err
			}
			var quorum []api.Queue
			for _, q := range qs {
				if q.Type == "quorum" {
					quorum = append(quorum, q)
				}
			}
			status := struct {
				Nodes  []api.Node  `json:"nodes"`
				Queues []api.Queue `json:"quorum_queues"`
			}{nodes, quorum}
			return e.out(status, func() {
				rows := make([][]string, 0, len(nodes))
				for _, n := range nodes {
					leads := 0
					for _, q := range quorum {
						if q.Leader == n.Name {
							leads++
						}
					}
					meta := ""
					if n.MetadataLeader {
						meta = "leader"
					}
					rows = append(rows, []string{n.Name, strconv.FormatBool(n.Running), strconv.Itoa(leads), meta})
				}
				e.table([]string{"NODE", "RUNNING", "LEADS", "METADATA"}, rows)
				if len(quorum) == 0 {
					return
				}
				rows = rows[:0]
				for _, q := range quorum {
					rows = append(rows, []string{q.Name, q.Leader, strings.Join(q.Members, ","), strings.Join(q.Online, ","), strconv.Itoa(q.Messages)})
				}
				fmt.Fprintln(e.stdout)
				e.table([]string{"QUORUM QUEUE", "LEADER", "MEMBERS", "ONLINE", "MESSAGES"}, rows)
			})
		},
	}}
}
