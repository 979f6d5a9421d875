// Package vault is the production TokenCipher and KeyManager: HashiCorp Vault transit with an
// aes256-gcm96 key, through github.com/hashicorp/vault/api.
//
// Row binding. Each value is bound to its row through Vault's key derivation: the transit key is
// created with derived=true and every call sends the canonical SecretBinding as "context", so each
// row gets its own HKDF-SHA256 key and a value opened under another row's context fails GCM
// authentication. We do not use "associated_data", although it looks like the natural fit,
// because transit's rewrap endpoint ignores it (vault v1.21.x; hashicorp/vault#29532, #31791):
// values sealed with associated data fail to rewrap, and the rotation job would have to decrypt
// and re-encrypt in the application. Rewrap does accept "context", so rotation stays server-side
// and plaintext never reaches the job. See shared/reference/vault-transit.md §1.6, §1.7 and §5.2.
//
// Fail closed. New checks, before serving, that the token or AppRole works and that the key
// exists with the expected shape (aes256-gcm96, derived, not convergent, not exportable, no
// plaintext backup, deletion not allowed); a misspelt key name fails instead of minting a key.
// The Vault side must back this up, because with the "create" capability transit's encrypt
// silently creates a missing key: set
//
//	vault write transit/config/keys disable_upsert=true
//
// and give the service a policy without "create", e.g. for key "betterkey-tokens":
//
//	path "transit/encrypt/betterkey-tokens"       { capabilities = ["update"] }
//	path "transit/decrypt/betterkey-tokens"       { capabilities = ["update"] }
//	path "transit/rewrap/betterkey-tokens"        { capabilities = ["update"] }
//	path "transit/keys/betterkey-tokens"          { capabilities = ["read"] }
//	path "transit/keys/betterkey-tokens/rotate"   { capabilities = ["update"] }
//	path "transit/keys/betterkey-tokens/config"   { capabilities = ["update"] }
//
// (the last two only where the service itself runs key rotation and retirement). Create the key
// with: vault write transit/keys/betterkey-tokens type=aes256-gcm96 derived=true
package vault

import (
	"net/url"
	"strings"
	"time"

	"github.com/betterkey/backend/domain"
)

// Defaults applied by New to zero fields.
const (
	DefaultMount        = "transit"
	DefaultAppRoleMount = "approle"
	DefaultTimeout      = 5 * time.Second
)

// Config says how to reach Vault and which transit key to use. Secret fields redact when the
// config is printed.
type Config struct {
	// Addr is the Vault base URL, e.g. https://vault.internal:8200.
	Addr string
	// Token authenticates directly; leave empty to use AppRole.
	Token domain.Secret
	// RoleID and SecretID authenticate with AppRole when Token is empty.
	RoleID   string
	SecretID domain.Secret
	// AppRoleMount is where the AppRole auth method is mounted (default "approle").
	AppRoleMount string
	// Mount is where the transit engine is mounted (default "transit").
	Mount string
	// Key is the transit key name; it must already exist.
	Key string
	// Timeout bounds every call to Vault, retries included (default 5s).
	Timeout time.Duration
}

// validName keeps key and mount names to characters that cannot change the request path; a
// mount may have several segments ("team/transit"), a key name only one.
func validName(s string, segments bool) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, seg := range strings.Split(s, "/") {
		if (!segments && seg != s) || seg == "" || seg == "." || seg == ".." {
			return false
		}
		for _, c := range seg {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
			if !ok {
				return false
			}
		}
	}
	return true
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	if c.Mount == "" {
		c.Mount = DefaultMount
	}
	if c.AppRoleMount == "" {
		c.AppRoleMount = DefaultAppRoleMount
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

// Validate reports the first setting that cannot work, before any network call; zero fields
// that have defaults are accepted.
func (c Config) Validate() error {
	c = c.withDefaults()
	u, err := url.Parse(c.Addr)
	switch {
	case c.Addr == "":
		return domain.Invalid("vault.addr", "is required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return domain.Invalid("vault.addr", "must be an http or https URL")
	case !c.Token.Empty() && (c.RoleID != "" || !c.SecretID.Empty()):
		return domain.Invalid("vault.auth", "set either a token or an AppRole role id and secret id, not both")
	case c.Token.Empty() && (c.RoleID == "" || c.SecretID.Empty()):
		return domain.Invalid("vault.auth", "a token, or an AppRole role id and secret id, is required")
	case !validName(c.Mount, true):
		return domain.Invalid("vault.mount", "must be a mount path such as transit")
	case !validName(c.AppRoleMount, true):
		return domain.Invalid("vault.approle_mount", "must be a mount path such as approle")
	case !validName(c.Key, false):
		return domain.Invalid("vault.key", "must be a transit key name of letters, digits, '_', '-' or '.'")
	case c.Timeout < 0 || c.Timeout > time.Minute:
		return domain.Invalid("vault.timeout", "must be between 0 (default) and 1m")
	}
	return nil
}
