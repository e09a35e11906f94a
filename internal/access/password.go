package access

// Passwords. A password set on Sluice is stored as bcrypt (cost
// Config.PasswordCost); a hash imported from RabbitMQ stays RabbitMQ's
// one round of salted SHA-256 (rabbit_password_hashing_sha256) until its
// user next logs in, when the broker replaces it with bcrypt. Verifying
// bcrypt costs tens of milliseconds by design, so a Verifier remembers
// the last password that verified for each user, as a keyed digest, and
// answers the next login of the same user and hash from it.

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// The hashing_algorithm names of definitions files.
const (
	AlgorithmSHA256 = "rabbit_password_hashing_sha256"
	AlgorithmBcrypt = "bcrypt"
)

// DefaultCost is the bcrypt cost of new passwords: bcrypt's default.
// MinCost and MaxCost bound the cost.
const (
	DefaultCost = bcrypt.DefaultCost
	MinCost     = bcrypt.MinCost
	MaxCost     = bcrypt.MaxCost
)

// MaxPasswordBytes is the longest password bcrypt takes.
const MaxPasswordBytes = 72

const sha256SaltBytes = 4

// Hash is a stored password hash. The zero Hash matches no password (a
// user created without one).
type Hash struct {
	// salt and sum are RabbitMQ's SHA-256 form; crypt is bcrypt's
	// "$2a$…" string. At most one form is set.
	salt, sum []byte
	crypt     []byte
}

// NewHash hashes password with bcrypt at cost.
func NewHash(password string, cost int) (Hash, error) {
	if len(password) > MaxPasswordBytes {
		return Hash{}, fmt.Errorf("password of %d bytes; bcrypt takes at most %d", len(password), MaxPasswordBytes)
	}
	c, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return Hash{}, fmt.Errorf("hash password: %w", err)
	}
	return Hash{crypt: c}, nil
}

// SHA256Hash is RabbitMQ's hash of password with a fresh salt; only
// tests and tools that must write RabbitMQ's format need it.
func SHA256Hash(password string) Hash {
	salt := make([]byte, sha256SaltBytes)
	_, _ = rand.Read(salt)
	return Hash{salt: salt, sum: sha256Sum(salt, password)}
}

func sha256Sum(salt []byte, password string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(password))
	return h.Sum(nil)
}

// ParseHash reads a hash as the API and definitions files carry it:
// algorithm is AlgorithmSHA256 (or "", RabbitMQ's default) with s the
// base64 of salt and digest, or AlgorithmBcrypt with s bcrypt's string.
// An empty s is the zero Hash.
func ParseHash(s, algorithm string) (Hash, error) {
	if s == "" {
		return Hash{}, nil
	}
	switch algorithm {
	case "", AlgorithmSHA256:
		if strings.HasPrefix(s, "$2") && algorithm == "" {
			return ParseHash(s, AlgorithmBcrypt)
		}
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(raw) != sha256SaltBytes+sha256.Size {
			return Hash{}, errors.New("password_hash: want base64 of a 4-byte salt and a SHA-256 digest")
		}
		return Hash{salt: raw[:sha256SaltBytes], sum: raw[sha256SaltBytes:]}, nil
	case AlgorithmBcrypt:
		if _, err := bcrypt.Cost([]byte(s)); err != nil {
			return Hash{}, fmt.Errorf("password_hash: not a bcrypt hash: %w", err)
		}
		return Hash{crypt: []byte(s)}, nil
	}
	return Hash{}, fmt.Errorf("hashing_algorithm '%s' is not supported; Sluice reads %s and %s", algorithm, AlgorithmSHA256, AlgorithmBcrypt)
}

// FromRecord rebuilds a Hash from its stored pieces (Record's output;
// records written before bcrypt hold a salt and a SHA-256 digest).
func FromRecord(salt, sum []byte) Hash {
	switch {
	case len(salt) == 0 && bytes.HasPrefix(sum, []byte("$2")):
		return Hash{crypt: sum}
	case len(salt) == 0 && len(sum) == 0:
		return Hash{}
	}
	return Hash{salt: salt, sum: sum}
}

// Record returns the pieces to store: a salt and a SHA-256 digest, or an
// empty salt and bcrypt's string.
func (h Hash) Record() (salt, sum []byte) {
	if h.crypt != nil {
		return nil, h.crypt
	}
	return h.salt, h.sum
}

// String is the hash as the API and definitions show it.
func (h Hash) String() string {
	switch {
	case h.crypt != nil:
		return string(h.crypt)
	case h.sum != nil:
		return base64.StdEncoding.EncodeToString(append(append([]byte(nil), h.salt...), h.sum...))
	}
	return ""
}

// Algorithm names h's algorithm as definitions files do.
func (h Hash) Algorithm() string {
	if h.crypt != nil {
		return AlgorithmBcrypt
	}
	return AlgorithmSHA256
}

// Legacy reports whether h is RabbitMQ's SHA-256, which a successful
// login replaces with bcrypt.
func (h Hash) Legacy() bool { return h.sum != nil }

// IsZero reports whether h matches no password.
func (h Hash) IsZero() bool { return h.crypt == nil && h.sum == nil }

// Equal reports whether h and o are the same stored hash.
func (h Hash) Equal(o Hash) bool {
	return bytes.Equal(h.crypt, o.crypt) && bytes.Equal(h.salt, o.salt) && bytes.Equal(h.sum, o.sum)
}

// verify checks password against h, the slow way.
func (h Hash) verify(password string) bool {
	switch {
	case h.crypt != nil:
		return bcrypt.CompareHashAndPassword(h.crypt, []byte(password)) == nil
	case h.sum != nil:
		return subtle.ConstantTimeCompare(sha256Sum(h.salt, password), h.sum) == 1
	}
	return false
}

// Verifier checks passwords and remembers, per user, the last one that
// verified (as an HMAC under a key made at New, never the password), so
// that a client logging in again with the same password and against the
// same stored hash costs a digest, not a bcrypt. Safe for concurrent use.
type Verifier struct {
	key  [32]byte
	cost int

	// dummy is what an unknown user's password is checked against, so
	// that "no such user" takes as long as "wrong password" and the
	// timing does not tell which names exist; made on first need.
	dummyOnce sync.Once
	dummy     []byte

	mu   sync.Mutex // guards good
	good map[string]remembered
}

type remembered struct {
	hash Hash
	mac  []byte
}

// NewVerifier returns a Verifier with a fresh key, for hashes of cost.
func NewVerifier(cost int) *Verifier {
	v := &Verifier{cost: cost, good: make(map[string]remembered)}
	_, _ = rand.Read(v.key[:])
	return v
}

func (v *Verifier) mac(user, password string) []byte {
	m := hmac.New(sha256.New, v.key[:])
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(password))
	return m.Sum(nil)
}

// Verify reports whether password is user's, whose stored hash is h.
func (v *Verifier) Verify(user string, h Hash, password string) bool {
	mac := v.mac(user, password)
	v.mu.Lock()
	r, ok := v.good[user]
	v.mu.Unlock()
	if ok && r.hash.Equal(h) && hmac.Equal(r.mac, mac) {
		return true
	}
	if !h.verify(password) {
		return false
	}
	v.mu.Lock()
	v.good[user] = remembered{hash: h, mac: mac}
	v.mu.Unlock()
	return true
}

// VerifyUnknown spends the time a wrong password of a known user would,
// and reports false.
func (v *Verifier) VerifyUnknown(password string) bool {
	v.dummyOnce.Do(func() {
		v.dummy, _ = bcrypt.GenerateFromPassword([]byte("no user has this password"), v.cost)
	})
	_ = bcrypt.CompareHashAndPassword(v.dummy, []byte(password))
	return false
}

// Forget drops what v remembers of user (its password or hash changed,
// or it was deleted).
func (v *Verifier) Forget(user string) {
	v.mu.Lock()
	delete(v.good, user)
	v.mu.Unlock()
}
