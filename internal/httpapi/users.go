package httpapi

// Users and permissions (administrator only), as RabbitMQ's endpoints.

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/sluicemq/sluice/internal/api"
	"github.com/sluicemq/sluice/internal/broker"
)

func apiUser(u broker.UserInfo) api.User {
	tags := u.Tags
	if tags == nil {
		tags = []string{}
	}
	return api.User{Name: u.Name, PasswordHash: u.PasswordHash, HashingAlgorithm: u.HashingAlgorithm, Tags: tags}
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, u *user) {
	out := []api.User{}
	for _, x := range s.b.Users() {
		out = append(out, apiUser(x))
	}
	writeListing(w, r, out)
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, u *user) {
	x, err := s.b.User(pathValue(r, "name"))
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiUser(x))
}

// parseTags accepts a JSON list of strings or a comma-separated string.
func parseTags(v any) ([]string, error) {
	var tags []string
	switch x := v.(type) {
	case nil:
	case string:
		for _, t := range strings.Split(x, ",") {
			if t = strings.TrimSpace(t); t != "" {
				tags = append(tags, t)
			}
		}
	case []any:
		for i, e := range x {
			t, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("tags[%d]: want a string", i)
			}
			tags = append(tags, t)
		}
	default:
		return nil, fmt.Errorf("tags: want a list of strings or a comma-separated string")
	}
	return tags, nil
}

func (s *Server) putUser(w http.ResponseWriter, r *http.Request, u *user) {
	name := pathValue(r, "name")
	var p api.UserPut
	if !decodeBody(w, r, &p) {
		return
	}
	tags, err := parseTags(p.Tags)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	created, err := s.b.PutUser(name, p.Password, p.PasswordHash, tags)
	answerDeclare(w, err, !created)
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, u *user) {
	name := pathValue(r, "name")
	if name == u.name {
		writeError(w, http.StatusConflict, "precondition_failed", "a user cannot delete itself")
		return
	}
	if err := s.b.DeleteUser(name); err != nil {
		writeBrokerError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func apiPermission(p broker.Permission) api.Permission {
	return api.Permission{User: p.User, VHost: p.VHost, Configure: p.Configure, Write: p.Write, Read: p.Read}
}

func (s *Server) permissions(w http.ResponseWriter, vhost, user string) {
	ps, err := s.b.Permissions(vhost, user)
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	out := []api.Permission{}
	for _, p := range ps {
		out = append(out, apiPermission(p))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listPermissions(w http.ResponseWriter, r *http.Request, u *user) {
	s.permissions(w, "", "")
}

func (s *Server) userPermissions(w http.ResponseWriter, r *http.Request, u *user) {
	name := pathValue(r, "name")
	if _, err := s.b.User(name); err != nil {
		writeBrokerError(w, err)
		return
	}
	s.permissions(w, "", name)
}

func (s *Server) getPermission(w http.ResponseWriter, r *http.Request, u *user) {
	p, err := s.b.Permission(pathValue(r, "vhost"), pathValue(r, "user"))
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiPermission(p))
}

func (s *Server) putPermission(w http.ResponseWriter, r *http.Request, u *user) {
	vh, name := pathValue(r, "vhost"), pathValue(r, "user")
	var p api.Permission
	if !decodeBody(w, r, &p) {
		return
	}
	_, existed := s.b.Permission(vh, name)
	err := s.b.SetPermission(broker.Permission{User: name, VHost: vh, Configure: p.Configure, Write: p.Write, Read: p.Read})
	if err != nil {
		writeBrokerError(w, err)
		return
	}
	if existed == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) deletePermission(w http.ResponseWriter, r *http.Request, u *user) {
	if err := s.b.DeletePermission(pathValue(r, "vhost"), pathValue(r, "user")); err != nil {
		writeBrokerError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
