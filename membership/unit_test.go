package membership

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"
)

func validConfig() Config {
	c := DefaultConfig()
	c.Meta.ID = "n1"
	c.Meta.RPCAddr = "127.0.0.1:9090"
	c.Meta.HTTPAddr = "127.0.0.1:8080"
	return c
}

func TestDefaultsAreMemberlistLAN(t *testing.T) {
	lan := memberlist.DefaultLANConfig()
	d := DefaultConfig()
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"ProbeInterval", d.ProbeInterval, lan.ProbeInterval},
		{"ProbeTimeout", d.ProbeTimeout, lan.ProbeTimeout},
		{"IndirectChecks", d.IndirectChecks, lan.IndirectChecks},
		{"SuspicionMult", d.SuspicionMult, lan.SuspicionMult},
		{"SuspicionMaxTimeoutMult", d.SuspicionMaxTimeoutMult, lan.SuspicionMaxTimeoutMult},
		{"GossipInterval", d.GossipInterval, lan.GossipInterval},
		{"GossipNodes", d.GossipNodes, lan.GossipNodes},
		{"RetransmitMult", d.RetransmitMult, lan.RetransmitMult},
		{"PushPullInterval", d.PushPullInterval, lan.PushPullInterval},
		{"GossipToTheDeadTime", d.GossipToTheDeadTime, lan.GossipToTheDeadTime},
		{"TCPTimeout", d.TCPTimeout, lan.TCPTimeout},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, memberlist LAN default %v", c.name, c.got, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	if err := validConfig().Fast().Validate(); err != nil {
		t.Fatalf("fast config: %v", err)
	}
	tests := []struct {
		name   string
		adjust func(*Config)
		want   []string // substrings, all of which must appear
	}{
		{"empty id", func(c *Config) { c.Meta.ID = "" }, []string{"node id is empty"}},
		{"space in id", func(c *Config) { c.Meta.ID = "a b" }, []string{"spaces"}},
		{"long id", func(c *Config) { c.Meta.ID = strings.Repeat("x", 200) }, []string{"at most 128"}},
		{"no rpc", func(c *Config) { c.Meta.RPCAddr = "" }, []string{"RPC address is empty"}},
		{"rpc port 0", func(c *Config) { c.Meta.RPCAddr = "127.0.0.1:0" }, []string{"port 0"}},
		{"scheme", func(c *Config) { c.Meta.Scheme = "ftp" }, []string{"scheme"}},
		{"replicas", func(c *Config) { c.Meta.Replicas = 0 }, []string{"replicas = 0"}},
		{"bind hostname", func(c *Config) { c.BindAddr = "localhost:7946" }, []string{"not an IP"}},
		{"bind no port", func(c *Config) { c.BindAddr = "127.0.0.1" }, []string{"bind address"}},
		{"advertise", func(c *Config) { c.AdvertiseAddr = "x" }, []string{"advertise address"}},
		{"join empty", func(c *Config) { c.Join = []string{""} }, []string{"empty address"}},
		{"key", func(c *Config) { c.SecretKey = []byte("short") }, []string{"secret key is 5 bytes"}},
		{"probe timeout", func(c *Config) { c.ProbeTimeout = 2 * time.Second }, []string{"below ProbeInterval"}},
		{"dead timeout", func(c *Config) { c.DeadTimeout = -1 }, []string{"DeadTimeout"}},
		{"meta too large", func(c *Config) { c.Meta.Zone = strings.Repeat("z", 500) }, []string{"512"}},
		{"cluster name characters", func(c *Config) { c.Meta.Cluster = "prod eu" }, []string{`cluster name "prod eu": only letters`}},
		{"long cluster name", func(c *Config) { c.Meta.Cluster = strings.Repeat("c", 129) }, []string{"cluster name is 129 bytes, at most 128"}},
		{"everything at once", func(c *Config) {
			c.Meta.ID = ""
			c.SecretKey = []byte("x")
			c.ProbeInterval = 0
			c.GossipNodes = 0
		}, []string{"node id", "secret key", "ProbeInterval", "GossipNodes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.adjust(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	c := validConfig()
	c.Meta.Zone = strings.Repeat("z", 500)
	if err := c.Validate(); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("oversized meta: %v, want ErrMetaTooLarge", err)
	}
}

func TestWithDefaults(t *testing.T) {
	var c Config
	c.Meta.ID = "n1"
	c.Meta.RPCAddr = "127.0.0.1:9090"
	c.DeadTimeout = time.Minute
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaulted zero config: %v", err)
	}
	if c.DeadTimeout != time.Minute || c.ProbeInterval != time.Second || c.Meta.Replicas != 3 || c.Meta.Partitions != 1024 {
		t.Errorf("WithDefaults = %+v", c)
	}
}

func TestMetaRoundTripAndSize(t *testing.T) {
	m := Meta{
		ID: strings.Repeat("n", maxIDLen), RPCAddr: "[2001:db8::1234:5678]:65535", HTTPAddr: "[2001:db8::1234:5678]:65535",
		Scheme: "https", Zone: "europe-west4-a", Incarnation: 1<<64 - 1, Replicas: 5, Partitions: 1 << 20,
		Leaving: true, Started: time.Now().UnixNano(),
	}
	b, err := encodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("worst realistic meta: %d bytes of %d", len(b), MetaMaxSize)
	got, err := decodeMeta(b)
	if err != nil || got != m {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for name, b := range map[string][]byte{"empty": nil, "garbage": []byte("\x01\x02consul"), "no id": mustMarshal(t, map[string]any{"n": 3})} {
		if _, err := decodeMeta(b); err == nil {
			t.Errorf("%s metadata decoded", name)
		}
	}
	// Unknown fields from newer peers are ignored.
	withExtra := mustMarshal(t, map[string]any{"id": "n9", "n": 3, "parts": 64, "future": "x"})
	if got, err := decodeMeta(withExtra); err != nil || got.ID != "n9" {
		t.Errorf("meta with an unknown field: %+v, %v", got, err)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bare is a Membership with a table and no memberlist, for the delegate's
// bookkeeping.
func bare(t *testing.T) *Membership {
	cfg := validConfig()
	cfg.Meta.Started = 1
	cfg.DeadTimeout = time.Hour
	m := &Membership{
		cfg:       cfg,
		log:       testLogger(t),
		kick:      make(chan struct{}, 1),
		self:      cfg.Meta,
		members:   map[string]*entry{},
		refused:   map[string]refusal{},
		conflicts: map[string]string{},
	}
	m.members["n1"] = &entry{Member: Member{Meta: cfg.Meta, State: StateAlive, Since: time.Now()}}
	return m
}

func peerMeta(id string, started int64) Meta {
	return Meta{ID: id, RPCAddr: "127.0.0.1:1", Scheme: "http", Replicas: 3, Partitions: 1024, Started: started}
}

func node(t *testing.T, meta Meta) *memberlist.Node {
	b, err := encodeMeta(meta)
	if err != nil {
		t.Fatal(err)
	}
	return &memberlist.Node{Name: meta.ID, Meta: b}
}

func pushPull(t *testing.T, gone ...goneRecord) []byte {
	return mustMarshal(t, &pushState{Gone: gone})
}

func TestLogBridgeSuspicion(t *testing.T) {
	m := bare(t)
	d := &delegate{m: m}
	d.NotifyJoin(node(t, peerMeta("n2", 5)))
	b := &logBridge{m: m}
	for _, line := range []string{
		"[DEBUG] memberlist: Failed UDP ping: n2 (timeout reached)\n",
		"[INFO] memberlist: Suspect n9 has failed, no acks received\n", // unknown: ignored
	} {
		if _, err := b.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if s := state(m, "n2"); s != StateAlive {
		t.Fatalf("n2 = %s before the suspicion line", s)
	}
	b.Write([]byte("[INFO] memberlist: Suspect n2 has failed, no acks received\n"))
	if s := state(m, "n2"); s != StateSuspect {
		t.Fatalf("n2 = %s after the suspicion line, want suspect", s)
	}
	if !m.Alive("n2") {
		t.Errorf("suspect must count as Alive")
	}
	d.NotifyPingComplete(&memberlist.Node{Name: "n2"}, time.Millisecond, nil)
	if s := state(m, "n2"); s != StateAlive {
		t.Fatalf("n2 = %s after an ack, want alive", s)
	}
	// Never suspect oneself.
	b.Write([]byte("[INFO] memberlist: Suspect n1 has failed, no acks received\n"))
	if s := state(m, "n1"); s != StateAlive {
		t.Errorf("self = %s", s)
	}
}

func TestLeaveClassification(t *testing.T) {
	m := bare(t)
	d := &delegate{m: m}

	// Disappearing while Leaving means left; otherwise dead.
	leaving := peerMeta("n2", 5)
	leaving.Leaving = true
	d.NotifyJoin(node(t, leaving))
	d.NotifyLeave(node(t, leaving))
	d.NotifyJoin(node(t, peerMeta("n3", 5)))
	d.NotifyLeave(node(t, peerMeta("n3", 5)))
	if s, s3 := state(m, "n2"), state(m, "n3"); s != StateLeft || s3 != StateDead {
		t.Fatalf("n2 = %s (want left), n3 = %s (want dead)", s, s3)
	}

	// A peer's report that this life of n3 left turns dead into left; a
	// report about another life does not.
	d.MergeRemoteState(pushPull(t, goneRecord{Meta: peerMeta("n3", 4), Left: true}), false)
	if s := state(m, "n3"); s != StateDead {
		t.Fatalf("report about an older life changed n3 to %s", s)
	}
	d.MergeRemoteState(pushPull(t, goneRecord{Meta: peerMeta("n3", 5), Left: true}), false)
	if s := state(m, "n3"); s != StateLeft {
		t.Fatalf("n3 = %s after a left report, want left", s)
	}

	// A left report arriving while the member still looks alive here is
	// remembered for when memberlist reports it gone.
	d.NotifyJoin(node(t, peerMeta("n4", 5)))
	d.MergeRemoteState(pushPull(t, goneRecord{Meta: peerMeta("n4", 5), Left: true}), false)
	if s := state(m, "n4"); s != StateAlive {
		t.Fatalf("a report made alive n4 %s; memberlist decides liveness", s)
	}
	d.NotifyLeave(node(t, peerMeta("n4", 5)))
	if s := state(m, "n4"); s != StateLeft {
		t.Fatalf("n4 = %s, want left", s)
	}
	// ... but not once it came back as a new life.
	d.MergeRemoteState(pushPull(t, goneRecord{Meta: peerMeta("n5", 5), Left: true}), false)
	d.NotifyJoin(node(t, peerMeta("n5", 5)))
	d.MergeRemoteState(pushPull(t, goneRecord{Meta: peerMeta("n5", 5), Left: true}), false)
	d.NotifyJoin(node(t, peerMeta("n5", 6)))
	d.NotifyLeave(node(t, peerMeta("n5", 6)))
	if s := state(m, "n5"); s != StateDead {
		t.Fatalf("n5's new life = %s, want dead", s)
	}
}

func TestMergeRemoteDead(t *testing.T) {
	m := bare(t)
	d := &delegate{m: m}
	now := time.Now()
	d.MergeRemoteState(pushPull(t,
		goneRecord{Meta: peerMeta("n2", 5), GossipAddr: "127.0.0.1:7", AgeMillis: 60_000}, // dead a minute: still in the ring
		goneRecord{Meta: peerMeta("n3", 5), AgeMillis: 2 * 3600_000},                      // past DeadTimeout: irrelevant
		goneRecord{Meta: peerMeta("n4", 5), Left: true},                                   // left: irrelevant
		goneRecord{Meta: Meta{ID: "n6", RPCAddr: "x:1", Replicas: 5, Partitions: 1024}},   // incompatible
		goneRecord{Meta: peerMeta("n1", 99), AgeMillis: 1},                                // about us
	), true)
	got := m.Members()
	if len(got) != 2 || got[1].ID != "n2" || got[1].State != StateDead || got[1].GossipAddr != "127.0.0.1:7" {
		t.Fatalf("members after merge = %+v", got)
	}
	if age := now.Sub(got[1].Since); age < 59*time.Second || age > 61*time.Second {
		t.Errorf("n2 dead for %v, want about a minute", age)
	}
	if s := state(m, "n1"); s != StateAlive {
		t.Errorf("self = %s", s)
	}
	m.rebuild(time.Now())
	if ids := ringIDs(m); len(ids) != 2 {
		t.Errorf("ring = %v, want n1 and the dead n2", ids)
	}

	// Converge on the earliest death; later reports do not move it.
	d.MergeRemoteState(pushPull(t, goneRecord{Meta: peerMeta("n2", 5), AgeMillis: 120_000}), false)
	d.MergeRemoteState(pushPull(t, goneRecord{Meta: peerMeta("n2", 5), AgeMillis: 1_000}), false)
	mem, _ := m.Member("n2")
	if age := time.Since(mem.Since); age < 119*time.Second {
		t.Errorf("n2 dead for %v, want the earliest report (2m)", age)
	}

	// Dead members in our own push/pull state round-trip.
	var st pushState
	if err := msgpack.Unmarshal(d.LocalState(false), &st); err != nil || len(st.Gone) != 1 || st.Gone[0].Meta.ID != "n2" {
		t.Errorf("LocalState = %+v, %v", st, err)
	}
}

func TestExpire(t *testing.T) {
	m := bare(t)
	m.cfg.DeadTimeout = time.Minute
	now := time.Now()
	m.mu.Lock()
	m.members["d1"] = &entry{Member: Member{Meta: peerMeta("d1", 1), State: StateDead, Since: now.Add(-30 * time.Second)}}
	m.members["d2"] = &entry{Member: Member{Meta: peerMeta("d2", 1), State: StateDead, Since: now.Add(-90 * time.Second)}}
	m.members["d3"] = &entry{Member: Member{Meta: peerMeta("d3", 1), State: StateDead, Since: now.Add(-150 * time.Second)}}
	m.members["l1"] = &entry{Member: Member{Meta: peerMeta("l1", 1), State: StateLeft, Since: now.Add(-30 * time.Second)}}
	m.members["l2"] = &entry{Member: Member{Meta: peerMeta("l2", 1), State: StateLeft, Since: now.Add(-90 * time.Second)}}
	m.tableChanged()
	m.mu.Unlock()

	next := m.expire(now)
	if want := now.Add(30 * time.Second); !next.Equal(want) {
		t.Errorf("next due = %v, want %v (d1 leaving the ring)", next.Sub(now), want.Sub(now))
	}
	var ids []string
	for _, mem := range m.Members() {
		ids = append(ids, mem.ID)
	}
	if strings.Join(ids, ",") != "d1,d2,l1,n1" {
		t.Errorf("members after expire = %v (d3 and l2 should be forgotten)", ids)
	}
	m.rebuild(now)
	if got := strings.Join(ringIDs(m), ","); got != "d1,n1" {
		t.Errorf("ring = %v, want d1 (dead 30s) and n1", got)
	}
}

func TestIncompatibleErrorText(t *testing.T) {
	m := bare(t)
	d := &delegate{m: m}
	other := peerMeta("n7", 1)
	other.Replicas = 5
	err := d.NotifyAlive(node(t, other))
	want := `membership: refusing node "n7": it has replicas=5 partitions=1024, this cluster has replicas=3 partitions=1024`
	if err == nil || err.Error() != want {
		t.Errorf("NotifyAlive = %v\nwant %s", err, want)
	}
	if err := d.NotifyAlive(&memberlist.Node{Name: "consul-1", Meta: []byte("dc1")}); !errors.Is(err, ErrIncompatible) {
		t.Errorf("foreign node: %v", err)
	}
	if err := d.NotifyAlive(node(t, peerMeta("n8", 1))); err != nil {
		t.Errorf("compatible node refused: %v", err)
	}
	named := peerMeta("n10", 2)
	named.Cluster = "prod"
	err = d.NotifyAlive(node(t, named))
	want = `membership: refusing node "n10": it is in the cluster named "prod" and this node in a cluster without a name (--cluster-name); every node of a cluster has the same name`
	if err == nil || err.Error() != want {
		t.Errorf("NotifyAlive of a named node into an unnamed cluster = %v\nwant %s", err, want)
	}
	if got := m.Refused(); got["n10"] != want || got["n7"] == "" || got["n8"] != "" {
		t.Errorf("Refused() = %v, want n7 and n10 with their reasons", got)
	}
	// Gossip about n10's earlier life passes the checks, but the refused
	// life is the newer one: it stays listed.
	if err := d.NotifyAlive(node(t, peerMeta("n10", 1))); err != nil {
		t.Errorf("n10's earlier life: %v", err)
	}
	if m.Refused()["n10"] != want {
		t.Errorf("Refused() = %v after gossip about n10's earlier life, want n10 still listed", m.Refused())
	}
	// Restarted with the cluster's settings, it is accepted and forgotten.
	if err := d.NotifyAlive(node(t, peerMeta("n10", 3))); err != nil {
		t.Errorf("n10 with the cluster's settings: %v", err)
	}
	if _, ok := m.Refused()["n10"]; ok {
		t.Errorf("Refused() still lists n10 after it was accepted: %v", m.Refused())
	}
	secure := peerMeta("n9", 1)
	secure.Scheme = "https"
	err = d.NotifyAlive(node(t, secure))
	want = `membership: refusing node "n9": it runs with TLS and this cluster without TLS; every node of a cluster uses TLS (--tls-cert, --tls-key, --tls-ca) or none does`
	if err == nil || err.Error() != want {
		t.Errorf("NotifyAlive of a TLS node into a plain cluster = %v\nwant %s", err, want)
	}
}
