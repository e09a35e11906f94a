package cli

import (
	"context"
	"flag"
	"strings"

	"github.com/sluicemq/sluice/internal/api"
)

// contextWithoutCancel lets a cleanup request (cancel a task) go out after
// the command's context ended.
func contextWithoutCancel(e *env) context.Context { return context.WithoutCancel(e.ctx) }

func userCommands() []*command {
	var (
		password, tags         string
		configure, write, read string
	)
	return []*command{
		{
			usage: "user ls",
			help:  "List users and their tags.",
			run: func(e *env, _ []string) error {
				us, err := e.client.Users(e.ctx)
				if err != nil {
					return err
				}
				return e.out(us, func() {
					rows := make([][]string, 0, len(us))
					for _, u := range us {
						rows = append(rows, []string{u.Name, strings.Join(u.Tags, ",")})
					}
					e.table([]string{"NAME", "TAGS"}, rows)
				})
			},
		},
		{
			usage: "user add NAME",
			help:  "Create or update a user. Tags: administrator, management, monitoring (comma-separated).",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&password, "new-password", "", "the user's password")
				fs.StringVar(&tags, "tags", "", "comma-separated tags")
			},
			run: func(e *env, a []string) error {
				if len(a) != 1 {
					return usagef("want one user name")
				}
				if err := e.client.PutUser(e.ctx, a[0], api.UserPut{Password: password, Tags: tags}); err != nil {
					return err
				}
				return e.done("user %s saved", a[0])
			},
		},
		{
			usage: "user delete NAME",
			help:  "Delete a user and its permissions.",
			run: func(e *env, a []string) error {
				if len(a) != 1 {
					return usagef("want one user name")
				}
				if err := e.client.DeleteUser(e.ctx, a[0]); err != nil {
					return err
				}
				return e.done("user %s deleted", a[0])
			},
		},
		{
			usage: "permissions ls",
			help:  "List permissions.",
			run: func(e *env, _ []string) error {
				ps, err := e.client.Permissions(e.ctx)
				if err != nil {
					return err
				}
				return e.out(ps, func() {
					rows := make([][]string, 0, len(ps))
					for _, p := range ps {
						rows = append(rows, []string{p.VHost, p.User, p.Configure, p.Write, p.Read})
					}
					e.table([]string{"VHOST", "USER", "CONFIGURE", "WRITE", "READ"}, rows)
				})
			},
		},
		{
			usage: "permissions set USER",
			help:  "Grant a user access to the vhost: regular expressions over resource names, as RabbitMQ.",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&configure, "configure", ".*", "resources the user may declare and delete")
				fs.StringVar(&write, "write", ".*", "resources the user may publish to")
				fs.StringVar(&read, "read", ".*", "resources the user may consume from")
			},
			run: func(e *env, a []string) error {
				if len(a) != 1 {
					return usagef("want one user name")
				}
				p := api.Permission{Configure: configure, Write: write, Read: read}
				if err := e.client.SetPermission(e.ctx, e.vhost, a[0], p); err != nil {
					return err
				}
				return e.done("permissions of %s on vhost %s set", a[0], e.vhost)
			},
		},
		{
			usage: "permissions delete USER",
			help:  "Revoke a user's access to the vhost.",
			run: func(e *env, a []string) error {
				if len(a) != 1 {
					return usagef("want one user name")
				}
				if err := e.client.DeletePermission(e.ctx, e.vhost, a[0]); err != nil {
					return err
				}
				return e.done("permissions of %s on vhost %s deleted", a[0], e.vhost)
			},
		},
	}
}
