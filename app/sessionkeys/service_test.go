package sessionkeys_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/betterkey/backend/adapters/memory"
	"github.com/betterkey/backend/adapters/sessiontoken"
	"github.com/betterkey/backend/app/keys"
	"github.com/betterkey/backend/app/sessionkeys"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

const (
	reload    = 10 * time.Second
	accessTTL = 15 * time.Minute
)

// replica is one server's signer and rotation service over the shared store and cipher.
type replica struct {
	signer *sessiontoken.Signer
	svc    *sessionkeys.Service
}

type world struct {
	clock   time.Time
	secrets *memory.SealedSecrets
	store   *memory.SigningKeys
	cipher  *flakyCipher
	conf    domain.Secret
}

func newWorld() *world {
	secrets := memory.NewSealedSecrets()
	return &world{clock: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC), secrets: secrets,
		store: memory.NewSigningKeys(secrets), cipher: &flakyCipher{Cipher: memory.NewCipher()}, conf: sessiontoken.GenerateKey()}
}

func (w *world) replica(t *testing.T) replica {
	t.Helper()
	sg, err := sessiontoken.New(sessiontoken.Config{SigningKey: w.conf, Issuer: "betterkey", Audience: "betterkey-app"})
	if err != nil {
		t.Fatal(err)
	}
	svc := sessionkeys.New(sessionkeys.Deps{Store: w.store, Cipher: w.cipher, Ring: sg, Reload: reload,
		AccessTTL: accessTTL, Now: func() time.Time { return w.clock }})
	if err := svc.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	return replica{signer: sg, svc: svc}
}

func (r replica) issue(t *testing.T, at time.Time) string {
	t.Helper()
	tok, err := r.signer.Issue(ports.AccessClaims{UserID: domain.NewUserID(), SessionID: domain.NewSessionID(), IssuedAt: at, ExpiresAt: at.Add(accessTTL)})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Reveal()
}

func (r replica) verifies(tok string, at time.Time) bool {
	_, err := r.signer.Verify(tok, at)
	return err == nil
}

// flakyCipher is the memory cipher with an off switch, for a key backend that goes away.
type flakyCipher struct {
	*memory.Cipher
	down atomic.Bool
}

func (c *flakyCipher) Open(ctx context.Context, b domain.SecretBinding, s domain.SealedSecret) (domain.Secret, error) {
	if c.down.Load() {
		return domain.Secret{}, domain.ErrUnavailable
	}
	return c.Cipher.Open(ctx, b, s)
}

func TestRotationAcrossReplicas(t *testing.T) {
	w := newWorld()
	a, b := w.replica(t), w.replica(t)
	t0 := w.clock
	before := a.issue(t, t0)
	if !b.verifies(before, t0) {
		t.Fatal("replicas on one configured key disagree")
	}
	id, ks, err := a.svc.Rotate(t.Context(), a.svc.DefaultOverlap())
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 2 || ks[0].State != domain.SigningKeySigning || ks[1].ID != id || ks[1].State != domain.SigningKeyPending {
		t.Fatalf("keys after the first rotation = %+v, want the configured key signing and the new one pending", ks)
	}
	from := t0.Add(a.svc.Propagation())
	// Until SignsFrom the configured key signs, so a replica that has not reloaded yet verifies it.
	early := a.issue(t, from.Add(-time.Second))
	if !b.verifies(early, from.Add(-time.Second)) {
		t.Fatal("a token signed before the new key's SignsFrom does not verify on a replica that has not reloaded")
	}
	w.clock = t0.Add(reload)
	if err := b.svc.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	fresh := b.issue(t, from)
	for name, r := range map[string]replica{"a": a, "b": b} {
		// early is the old key's last token: it lives to the end of the overlap, and not longer.
		if !r.verifies(fresh, from) || !r.verifies(early, from.Add(accessTTL-2*time.Second)) {
			t.Errorf("replica %s: the new key's token or the old key's token in the overlap does not verify", name)
		}
		if r.verifies(early, from.Add(accessTTL)) {
			t.Errorf("replica %s: the old key's token verifies after the overlap", name)
		}
	}
	w.clock = from
	if got, _ := a.svc.Keys(t.Context()); got[0].State != domain.SigningKeyVerifying || got[1].State != domain.SigningKeySigning {
		t.Errorf("states once the new key signs = %s, %s", got[0].State, got[1].State)
	}
}

// An emergency rotation (overlap 0) ends the old key's tokens as soon as the new key signs.
func TestEmergencyRotation(t *testing.T) {
	w := newWorld()
	a := w.replica(t)
	leaked := a.issue(t, w.clock)
	_, _, err := a.svc.Rotate(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	from := w.clock.Add(a.svc.Propagation())
	if !a.verifies(leaked, from.Add(-time.Second)) || a.verifies(leaked, from) {
		t.Fatal("the leaked key's token must verify until the new key signs and never after")
	}
	// A reload after the old key retired keeps the configured key out for good.
	w.clock = from.Add(time.Second)
	if err := a.svc.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if a.verifies(leaked, w.clock) {
		t.Fatal("the configured key came back after a reload")
	}
}

func TestRotationRefusesABadOverlapAndStoresNothing(t *testing.T) {
	w := newWorld()
	a := w.replica(t)
	for _, o := range []time.Duration{-time.Second, 2 * time.Hour} {
		if _, _, err := a.svc.Rotate(t.Context(), o); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("overlap %v: %v, want KindInvalid", o, err)
		}
	}
	if ks, _ := a.svc.Keys(t.Context()); len(ks) != 0 {
		t.Fatalf("a refused rotation stored %d keys", len(ks))
	}
}

// The signing keys are secrets at rest like any other: the rewrap job moves them to the latest
// key version, so retiring the old version does not take every session down with it.
func TestRewrapCoversTheSigningKeys(t *testing.T) {
	w := newWorld()
	a := w.replica(t)
	if _, _, err := a.svc.Rotate(t.Context(), accessTTL); err != nil {
		t.Fatal(err)
	}
	km := keys.New(keys.Deps{Keys: w.cipher.Cipher, Cipher: w.cipher, Secrets: w.secrets})
	v, err := km.Rotate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	p, err := km.Rewrap(t.Context(), 0, nil)
	if err != nil || p.Done != 2 || p.Remaining != 0 {
		t.Fatalf("rewrap = %+v, %v; want both signing keys upgraded", p, err)
	}
	if err := km.Retire(t.Context(), v); err != nil {
		t.Fatal(err)
	}
	b := w.replica(t) // a replica starting after the retirement opens the rewrapped keys
	w.clock = w.clock.Add(a.svc.Propagation())
	if tok := b.issue(t, w.clock); !a.verifies(tok, w.clock) {
		t.Fatal("replicas disagree after the rewrap")
	}
}

// A replica whose reload fails keeps deciding with the keys it has.
func TestAFailedReloadKeepsTheKeys(t *testing.T) {
	w := newWorld()
	a, b := w.replica(t), w.replica(t)
	if _, _, err := a.svc.Rotate(t.Context(), accessTTL); err != nil {
		t.Fatal(err)
	}
	if err := b.svc.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.svc.Rotate(t.Context(), accessTTL); err != nil { // a second key, which b must open
		t.Fatal(err)
	}
	w.cipher.down.Store(true)
	if err := b.svc.Reload(t.Context()); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("reload with the key backend down = %v, want unavailable", err)
	}
	w.clock = w.clock.Add(b.svc.Propagation())
	if tok := b.issue(t, w.clock); !a.verifies(tok, w.clock) {
		t.Fatal("after a failed reload the replica's tokens no longer verify elsewhere")
	}
}

// An emptied table (a restore, a stray DELETE) does not bring the configured key back.
func TestAnEmptiedTableKeepsTheConfiguredKeyOut(t *testing.T) {
	w := newWorld()
	a := w.replica(t)
	leaked := a.issue(t, w.clock)
	if _, _, err := a.svc.Rotate(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	if err := w.store.UpdateSigningKeys(t.Context(), func([]domain.SigningKey) ([]domain.SigningKey, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if err := a.svc.Reload(t.Context()); err == nil {
		t.Fatal("a reload of an empty table succeeded")
	}
	at := w.clock.Add(a.svc.Propagation())
	if a.verifies(leaked, at) {
		t.Fatal("the configured key verifies again after the table was emptied")
	}
}
