package access

import (
	"strings"
	"testing"
)

func TestHashes(t *testing.T) {
	h, err := NewHash("s3cret", MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if h.Algorithm() != AlgorithmBcrypt || h.Legacy() || !strings.HasPrefix(h.String(), "$2a$") {
		t.Fatalf("new hash %s %q", h.Algorithm(), h.String())
	}
	v := NewVerifier(MinCost)
	if !v.Verify("u", h, "s3cret") || v.Verify("u", h, "S3cret") || !v.Verify("u", h, "s3cret") {
		t.Fatal("bcrypt verify")
	}
	back := FromRecord(h.Record())
	if !back.Equal(h) {
		t.Fatal("record round trip")
	}
	// RabbitMQ 3.10's export of the password "s3cret".
	rh, err := ParseHash("fgMWAknu86Tw8vkuXjZgAmw918YH4NFnzzTMTv4D9Eu2tf8d", AlgorithmSHA256)
	if err != nil {
		t.Fatal(err)
	}
	if !rh.Legacy() || !v.Verify("app", rh, "s3cret") || v.Verify("app", rh, "guess") {
		t.Fatal("RabbitMQ's SHA-256")
	}
	if got := FromRecord(rh.Record()).String(); got != "fgMWAknu86Tw8vkuXjZgAmw918YH4NFnzzTMTv4D9Eu2tf8d" {
		t.Fatalf("SHA-256 round trip %q", got)
	}
	// The remembered password is tied to the hash it verified against.
	other, _ := NewHash("other", MinCost)
	if v.Verify("u", other, "s3cret") {
		t.Fatal("a remembered password verified against another hash")
	}
	var none Hash
	if v.Verify("nobody", none, "") || v.Verify("nobody", none, "x") || !none.IsZero() {
		t.Fatal("the zero hash matched")
	}
	for _, bad := range []struct{ s, alg string }{{"bm90IGEgaGFzaA==", ""}, {"$2a$nope", AlgorithmBcrypt}, {"x", "rabbit_password_hashing_md5"}} {
		if _, err := ParseHash(bad.s, bad.alg); err == nil {
			t.Errorf("ParseHash(%q, %q) accepted", bad.s, bad.alg)
		}
	}
	if _, err := NewHash(strings.Repeat("p", MaxPasswordBytes+1), MinCost); err == nil {
		t.Error("a password bcrypt cannot take was hashed")
	}
}
