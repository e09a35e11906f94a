package broker

import "testing"

// A connection sees a permission change at its next operation.
func TestConnectionPermissionsFollowChanges(t *testing.T) {
	b := openBroker(t, nil)
	if _, err := b.PutUser("u", "pw", "", nil); err != nil {
		t.Fatal(err)
	}
	_, err := b.Connect(ConnInfo{Name: "c", User: "u", VHost: "/"})
	wantCode(t, err, NotAllowed, "access to vhost '/' refused for user 'u'")
	if err := b.SetPermission(Permission{User: "u", VHost: "/", Configure: "^a", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	conn, err := b.Connect(ConnInfo{Name: "c", User: "u", VHost: "/"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	ch := conn.Channel(1, &fakeOutlet{})
	if _, err := ch.DeclareQueue(QueueDecl{Name: "a1"}); err != nil {
		t.Fatalf("declare a1: %v", err)
	}
	_, err = ch.DeclareQueue(QueueDecl{Name: "b1"})
	wantCode(t, err, AccessRefused, "access to queue 'b1' in vhost '/' refused for user 'u'")
	if err := b.SetPermission(Permission{User: "u", VHost: "/", Configure: "^b", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.DeclareQueue(QueueDecl{Name: "b1"}); err != nil {
		t.Fatalf("declare b1 after the change: %v", err)
	}
	if err := b.DeleteUser("u"); err != nil {
		t.Fatal(err)
	}
	_, err = ch.Get("b1", true)
	wantCode(t, err, AccessRefused, "access to vhost '/' refused for user 'u'")
}
