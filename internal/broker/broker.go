package broker

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicemq/sluice/internal/records"
	"github.com/sluicemq/sluice/internal/store"
)

// defaultCacheBytes bounds the records of freshly published messages kept
// in memory until their first delivery.
const defaultCacheBytes = 64 << 20

// env is what vhosts, queues and channels need of the broker: the narrow
// dependencies, not the broker itself.
type env struct {
	// st is the store seen through pipe: writes go through the pipeline,
	// reads see its deferred changes.
	st     store.Store
	pipe   store.Pipeline[*publishReq] // commit.go
	fence  *storeFence                 // fence.go: the pipeline writes through it
	log    *slog.Logger
	cache  *bodyCache
	now    func() time.Time
	window int
	// newQueueID allocates and records a queue id.
	newQueueID func(durable bool) (store.QueueID, error)
	reply      *replyRegistry
	schemas    *schemaRegistry // schema.go
	policies   *policyRegistry // policy.go
	limits     *limitsDB       // limits.go: set by Open before any vhost serves
	// dead and delays are set by Open before the goroutines start.
	dead          *deadLetterer
	delays        *scheduler
	expiry        *expirer // expiry.go
	noPoisonQueue bool
	cluster       Cluster  // quorum.go; nil for a single node
	remotes       *remotes // remote.go: sessions with other nodes
	node          string   // this node's name in a cluster (Config.Node)
	// reloadMeta makes the in-memory state match the store's shared
	// metadata keys (metasync.go).
	reloadMeta func(keys []string)
	// dispatchers are the queues' dispatcher wake-ups (queue.wakeLocked)
	// and store readers (read.go); Close waits for them after the
	// pipeline stopped.
	dispatchers goGroup
	stats       msgCounters    // stats.go: broker-wide
	objects     objectCounters // lifecycle.go
}

// Broker is the domain: vhosts, exchanges, queues, consumers.
type Broker struct {
	cfg    Config
	env    *env
	vhMu   sync.RWMutex // vhosts.go: guards vhosts after Open
	vhosts map[string]*vhost
	users  *userDB
	limits *limitsDB // limits.go

	idMu        sync.Mutex
	nextQueueID store.QueueID

	delayQID store.QueueID // the hidden queue of delayed publishes
	sharing  *bodySharing  // shared.go: fanout bodies, swept by housekeeping

	// held are quorum queue definitions whose vhost is not here yet,
	// by vhost (metasync.go); guarded by vhMu.
	held map[string][]heldDef
	// vhostGone: what the front door does when another node's deletion
	// of a vhost applies here (OnVHostGone, metasync.go)
	vhostGone atomic.Pointer[func(vhost string)]

	closeOnce sync.Once
	stop      chan struct{}  // closed by Close: stops housekeeping
	wg        sync.WaitGroup // the housekeeping goroutine
}

// Open recovers durable definitions and messages from st and starts the
// broker's goroutines. The broker does not own st: the caller closes it
// after Close.
func Open(cfg Config, st store.Store) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	b := &Broker{cfg: cfg, vhosts: make(map[string]*vhost)}
	pub := &publishing{log: cfg.Logger}
	fence := &storeFence{log: cfg.Logger}
	pipe := newPipeline(fencingStore{st, fence}, pub)
	bodies := sharedBodies(st, cfg.Cluster)
	sharing, err := newBodySharing(bodies)
	if err != nil {
		return nil, fmt.Errorf("open broker: %w", err)
	}
	pub.sharing, b.sharing = sharing, sharing
	var view store.Store = pipe.Store()
	if bodies != nil {
		view = sharedStore{view, bodies}
	}
	b.env = &env{
		st:     view,
		pipe:   pipe,
		fence:  fence,
		log:    cfg.Logger,
		cache:  newBodyCache(cmp.Or(cfg.BodyCacheBytes, defaultCacheBytes)),
		now:    cfg.Now,
		window: cfg.OutletWindow,
		reply:  newReplyRegistry(),

		noPoisonQueue: cfg.NoPoisonQueue,
		cluster:       cfg.Cluster,
		remotes:       newRemotes(),
		node:          cfg.Node,
	}
	b.env.newQueueID = b.allocQueueID
	b.env.reloadMeta = b.MetaChanged
	if err := migrateRecords(b.env.st, cfg.Logger); err != nil { // migrate.go
		return nil, err
	}
	if err := b.openSchemas(); err != nil {
		return nil, err
	}
	if err := b.openPolicies(); err != nil { // policy.go
		return nil, err
	}
	users, err := openUsers(st, cfg)
	if err != nil {
		return nil, err
	}
	b.users = users
	if err := b.openLimits(); err != nil { // limits.go
		return nil, err
	}
	if err := b.SeedPermissions(); err != nil {
		return nil, fmt.Errorf("open broker: %w", err)
	}
	if err := b.loadNextQueueID(); err != nil {
		return nil, err
	}
	vh := newVHost("/", b.env)
	b.vhosts[vh.name] = vh
	if err := b.loadVHosts(); err != nil { // vhosts.go
		return nil, err
	}
	if err := b.recover(); err != nil {
		return nil, err
	}
	if err := b.openDelayQueue(pub); err != nil {
		return nil, err
	}
	b.env.dead = startDeadLetterer(b.env)
	b.env.delays = newScheduler(b, delayWindow)
	b.env.expiry = startExpirer(cfg.Now)
	pub.delays, pub.dead = b.env.delays, b.env.dead
	pipe.Start()
	b.env.delays.start()
	b.armAll() // expiry.go
	b.stop = make(chan struct{})
	b.wg.Add(1)
	go b.runHousekeeping()
	return b, nil
}

// openDelayQueue finds (or allocates) the hidden delay queue and where its
// seqs continue.
func (b *Broker) openDelayQueue(c *publishing) error {
	v, err := b.env.st.GetMeta(records.MetaDelayQueueID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		id, err := b.allocQueueID(true)
		if err != nil {
			return fmt.Errorf("open broker: allocate the delay queue: %w", err)
		}
		var batch store.Batch
		batch.PutMeta(records.MetaDelayQueueID, records.EncodeQueueIDCounter(id))
		if err := b.env.st.Apply(&batch, true); err != nil {
			return fmt.Errorf("open broker: record the delay queue: %w", err)
		}
		b.delayQID = id
	case err != nil:
		return fmt.Errorf("open broker: read the delay queue id: %w", err)
	default:
		id, _, err := records.DecodeQueueIDCounter("delay queue id", v)
		if err != nil {
			return fmt.Errorf("open broker: %w", err)
		}
		b.delayQID = id
	}
	last, err := b.env.st.LastSeq(b.delayQID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("open broker: delay queue: %w", err)
	}
	c.delayQID, c.delaySeq = b.delayQID, last+1
	return nil
}

// Close stops the broker's goroutines, waiting for pending commits. Later
// publishes fail with ResourceError.
func (b *Broker) Close(ctx context.Context) error {
	var err error
	b.closeOnce.Do(func() {
		b.env.delays.close()
		b.env.expiry.close()
		b.env.dead.close()
		close(b.stop)
		b.wg.Wait()
		err = b.env.pipe.Close(ctx)
		b.env.dispatchers.close()
	})
	return err
}

// goGroup runs goroutines a closing broker waits for. Once closed it
// starts no more: a settle that arrives during Close (from another node,
// say) asks for none the WaitGroup would race with.
type goGroup struct {
	mu     sync.Mutex // a leaf
	closed bool
	wg     sync.WaitGroup
	// before, when set (by tests, before the group's first Go), runs on
	// each goroutine before its work: it can hold a wake-up back.
	before func()
}

// Go runs fn on a goroutine of its own, reporting false (and running
// nothing) once the group is closed.
func (g *goGroup) Go(fn func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	if before := g.before; before != nil {
		g.wg.Go(func() { before(); fn() })
		return true
	}
	g.wg.Go(fn)
	return true
}

// close starts no more goroutines and waits for those running.
func (g *goGroup) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}

// Authenticate checks a login (users.go). Failure is AccessRefused, with
// one reason for every refused password (the log says more); a source
// that failed too often is refused unchecked for a while, the error
// wrapping *access.Throttled.
func (b *Broker) Authenticate(l Login) error {
	return b.users.authenticate(l)
}

// AuthenticateExternal admits a user whose identity a verified TLS client
// certificate proved (SASL EXTERNAL; l.Password is not read): the user
// must exist, and one restricted to loopback must come from there; the
// throttle and the failure log apply as to any login. Failure is
// AccessRefused.
func (b *Broker) AuthenticateExternal(l Login) error {
	return b.users.authenticateExternal(l)
}

// Connect opens a session of one client connection with one vhost. It
// fails with NotAllowed when the vhost does not exist or the user may not
// use it.
func (b *Broker) Connect(info ConnInfo) (*Connection, error) {
	vh := b.vhost(info.VHost)
	if vh == nil {
		return nil, errorf(NotAllowed, "vhost '%s' not found", info.VHost)
	}
	if info.User != "" && !b.users.exists(info.User) {
		return nil, errorf(NotAllowed, "access to vhost '%s' refused for user '%s'", info.VHost, info.User)
	}
	release, err := b.limits.admit(info.User, info.VHost) // limits.go
	if err != nil {
		return nil, err
	}
	c := newConnection(vh, info)
	c.release, c.limits = release, b.limits
	c.impersonator = b.users.hasTag(info.User, tagImpersonator)
	if info.User != "" {
		access, err := b.newConnAccess(info.VHost, info.User) // permissions.go
		if err != nil {
			release()
			return nil, err
		}
		c.access = access
	}
	b.env.objects.connOpened.Add(1)
	return c, nil
}

func (b *Broker) loadNextQueueID() error {
	v, err := b.env.st.GetMeta(records.MetaNextQueueID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		b.nextQueueID = 1
	case err != nil:
		return fmt.Errorf("open broker: read next queue id: %w", err)
	default:
		id, _, err := records.DecodeQueueIDCounter("next queue id", v)
		if err != nil {
			return fmt.Errorf("open broker: %w", err)
		}
		b.nextQueueID = id
	}
	return nil
}

// allocQueueID hands out a queue id that was never used, recording it (and
// whether its queue is durable) so that Open can drop the leftovers of
// non-durable queues. The records are deferred to the write pipeline, in
// id order (under idMu), so they reach the store before any message of the
// queue; a durable queue's declare syncs them with its definition.
func (b *Broker) allocQueueID(durable bool) (store.QueueID, error) {
	b.idMu.Lock()
	defer b.idMu.Unlock()
	id := b.nextQueueID
	var batch store.Batch
	batch.PutMeta(records.MetaNextQueueID, records.EncodeQueueIDCounter(id+1))
	batch.PutMeta(records.QueueIDKey(id), records.EncodeQueueIDFlags(durable))
	b.env.pipe.Defer(&batch)
	b.nextQueueID++
	return id, nil
}

// randomName returns prefix followed by 22 characters of base64url.
func randomName(prefix string) string {
	var r [16]byte
	_, _ = rand.Read(r[:])
	return prefix + base64.RawURLEncoding.EncodeToString(r[:])
}
