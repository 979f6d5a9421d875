package vault

import (
	"context"
	"fmt"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// keyInfo is what the service needs from transit/keys/<name>.
type keyInfo struct {
	versions ports.KeyVersions
	data     map[string]any
}

// readKey reads the key's metadata (never key material: for symmetric keys "keys" maps versions
// to creation times).
func (c *Cipher) readKey(ctx context.Context, op string) (keyInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	s, err := c.read(ctx, c.paths.key)
	if err != nil {
		return keyInfo{}, classify(op, err, false)
	}
	if s == nil || s.Data == nil { // a missing key reads as nil, nil
		return keyInfo{}, fmt.Errorf("%s: transit key %q not found at mount %q", op, c.cfg.Key, c.cfg.Mount)
	}
	latest, ok1 := asInt(s.Data["latest_version"])
	minDec, ok2 := asInt(s.Data["min_decryption_version"])
	if !ok1 || !ok2 || latest < 1 {
		return keyInfo{}, fmt.Errorf("%s: transit key %q has no version information", op, c.cfg.Key)
	}
	return keyInfo{versions: ports.KeyVersions{Latest: latest, MinDecryption: max(minDec, 1)}, data: s.Data}, nil
}

// checkKey refuses a key that is missing or not shaped as the package doc requires.
func (c *Cipher) checkKey(ctx context.Context) error {
	k, err := c.readKey(ctx, "check transit key")
	if err != nil {
		return err
	}
	want := map[string]any{
		"type": "aes256-gcm96", "derived": true, "convergent_encryption": false,
		"exportable": false, "allow_plaintext_backup": false, "deletion_allowed": false,
		"supports_encryption": true, "supports_decryption": true,
	}
	for field, v := range want {
		got, present := k.data[field]
		if field == "convergent_encryption" && !present {
			continue // only reported for derived keys
		}
		if got != v {
			return fmt.Errorf("check transit key: %q must have %s=%v, has %v", c.cfg.Key, field, v, got)
		}
	}
	return nil
}

// Rotate implements ports.KeyManager.
func (c *Cipher) Rotate(ctx context.Context) (int, error) {
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	s, err := c.write(rctx, c.paths.key+"/rotate", map[string]any{})
	if err != nil {
		return 0, classify("rotate key", err, false)
	}
	if s != nil {
		if v, ok := asInt(s.Data["latest_version"]); ok && v > 0 {
			return v, nil
		}
	}
	k, err := c.readKey(ctx, "rotate key")
	if err != nil {
		return 0, err
	}
	return k.versions.Latest, nil
}

// Versions implements ports.KeyManager.
func (c *Cipher) Versions(ctx context.Context) (ports.KeyVersions, error) {
	k, err := c.readKey(ctx, "read key versions")
	if err != nil {
		return ports.KeyVersions{}, err
	}
	return k.versions, nil
}

// Retire implements ports.KeyManager by setting the key's min_decryption_version. Vault then
// archives the older versions; they can be re-admitted by lowering it until someone trims them.
func (c *Cipher) Retire(ctx context.Context, minDecryptionVersion int) error {
	k, err := c.readKey(ctx, "retire key versions")
	if err != nil {
		return err
	}
	if minDecryptionVersion < 1 || minDecryptionVersion > k.versions.Latest {
		return fmt.Errorf("retire key versions: %w",
			domain.Invalid("min_decryption_version", "must be between 1 and the latest key version"))
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	_, err = c.write(ctx, c.paths.key+"/config", map[string]any{
		"min_decryption_version": minDecryptionVersion,
	})
	if err != nil {
		return classify("retire key versions", err, false)
	}
	return nil
}
