package vault

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/betterkey/backend/adapters/cipherprobe"
	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Scheme prefixes every value transit seals ("vault:v<N>:...").
const Scheme = "vault"

// Cipher is a ports.TokenCipher and ports.KeyManager over one transit key. It is safe for
// concurrent use; Close stops its token-renewal goroutine.
type Cipher struct {
	client *api.Client
	cfg    Config
	log    *slog.Logger
	paths  paths

	logins    logins
	stop      context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var (
	_ ports.TokenCipher = (*Cipher)(nil)
	_ ports.KeyManager  = (*Cipher)(nil)
)

// paths are the transit endpoints of the key, built once from validated names.
type paths struct{ encrypt, decrypt, rewrap, key string }

// New connects to Vault, authenticates, checks that the transit key exists with the expected shape
// and starts token renewal. It fails (closed) on any problem; errors wrap domain.ErrUnavailable
// when Vault cannot be reached. Call Canary before serving, and Close on shutdown. A nil log
// discards renewal events.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Cipher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new vault cipher: %w", err)
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	vc := api.DefaultConfig() // also reads VAULT_CACERT and the other TLS settings from the environment
	if vc.Error != nil {
		return nil, fmt.Errorf("new vault cipher: %w", vc.Error)
	}
	if tr, ok := vc.HttpClient.Transport.(*http.Transport); ok && tr.TLSClientConfig != nil &&
		tr.TLSClientConfig.InsecureSkipVerify && strings.HasPrefix(cfg.Addr, "https:") {
		return nil, errors.New("new vault cipher: VAULT_SKIP_VERIFY is set; refusing Vault without TLS verification")
	}
	vc.Address = cfg.Addr
	vc.Timeout = cfg.Timeout
	vc.MaxRetries = 2 // on connection errors, 412, 429 and 5xx; the per-call timeout still bounds it
	vc.MinRetryWait = 100 * time.Millisecond
	vc.MaxRetryWait = time.Second
	client, err := api.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("new vault cipher: %w", err)
	}
	client.ClearToken() // NewClient picks up an ambient VAULT_TOKEN; only the configured one counts

	mount, key := cfg.Mount, cfg.Key
	c := &Cipher{client: client, cfg: cfg, log: log, logins: logins{handover: make(chan *api.Secret, 1)}, paths: paths{
		encrypt: mount + "/encrypt/" + key,
		decrypt: mount + "/decrypt/" + key,
		rewrap:  mount + "/rewrap/" + key,
		key:     mount + "/keys/" + key,
	}}
	auth, err := c.authenticate(ctx)
	if err != nil {
		return nil, fmt.Errorf("new vault cipher: %w", err)
	}
	if err := c.checkKey(ctx); err != nil {
		return nil, fmt.Errorf("new vault cipher: %w", err)
	}
	bg, stop := context.WithCancel(context.Background())
	c.stop = stop
	c.wg.Add(1)
	go c.keepToken(bg, auth)
	return c, nil
}

// Close stops token renewal and waits for it. It is safe to call more than once.
func (c *Cipher) Close() error {
	c.closeOnce.Do(func() {
		c.stop()
		c.wg.Wait()
	})
	return nil
}

// Canary runs the startup self-test: a round trip, and a wrong binding that must fail (which also
// proves the key is derived, i.e. that rows are bound).
func (c *Cipher) Canary(ctx context.Context) error { return cipherprobe.Canary(ctx, c) }

// Seal implements ports.TokenCipher.
func (c *Cipher) Seal(ctx context.Context, b domain.SecretBinding, plaintext domain.Secret) (domain.SealedSecret, error) {
	if err := b.Validate(); err != nil {
		return domain.SealedSecret{}, fmt.Errorf("seal secret: %w", err)
	}
	if plaintext.Empty() {
		return domain.SealedSecret{}, fmt.Errorf("seal secret: %w", domain.ErrEmptySecret)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	s, err := c.write(ctx, c.paths.encrypt, map[string]any{
		"plaintext": base64.StdEncoding.EncodeToString([]byte(plaintext.Reveal())),
		"context":   bindingContext(b),
	})
	if err != nil {
		return domain.SealedSecret{}, classify("seal secret", err, false)
	}
	if s == nil { // the client returns nil, nil for an empty 2xx/404 body (vault#2424)
		return domain.SealedSecret{}, errors.New("seal secret: vault returned no data")
	}
	sealed, err := parseCiphertext(s.Data["ciphertext"], s.Data["key_version"])
	if err != nil {
		return domain.SealedSecret{}, fmt.Errorf("seal secret: %w", err)
	}
	return sealed, nil
}

// Open implements ports.TokenCipher.
func (c *Cipher) Open(ctx context.Context, b domain.SecretBinding, s domain.SealedSecret) (domain.Secret, error) {
	if err := b.Validate(); err != nil {
		return domain.Secret{}, fmt.Errorf("open secret: %w", err)
	}
	if s.Scheme() != Scheme {
		return domain.Secret{}, fmt.Errorf("open secret: not sealed by vault: %w", domain.ErrSealedSecretInvalid)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	resp, err := c.write(ctx, c.paths.decrypt, map[string]any{
		"ciphertext": s.Ciphertext(),
		"context":    bindingContext(b),
	})
	if err != nil {
		return domain.Secret{}, classify("open secret", err, true)
	}
	if resp == nil {
		return domain.Secret{}, errors.New("open secret: vault returned no data")
	}
	// A missing or empty plaintext is an error, never an empty token: we never seal empty values.
	b64, _ := resp.Data["plaintext"].(string)
	pt, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(pt) == 0 {
		return domain.Secret{}, errors.New("open secret: vault returned no plaintext")
	}
	return domain.NewSecret(string(pt)), nil
}

// bindingContext is the key-derivation context that binds a value to its row.
func bindingContext(b domain.SecretBinding) string {
	return base64.StdEncoding.EncodeToString(b.Canonical())
}

// parseCiphertext reads a transit ciphertext and checks it against the key_version Vault reported.
func parseCiphertext(ct, version any) (domain.SealedSecret, error) {
	text, _ := ct.(string)
	s, err := domain.ParseSealed(text)
	if err != nil || s.Scheme() != Scheme {
		return domain.SealedSecret{}, errors.New("vault returned a malformed ciphertext")
	}
	if v, ok := asInt(version); ok && v != s.KeyVersion() {
		return domain.SealedSecret{}, fmt.Errorf("vault reported key version %d for a v%d ciphertext", v, s.KeyVersion())
	}
	return s, nil
}
