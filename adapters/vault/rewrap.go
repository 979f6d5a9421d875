package vault

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// maxBatch caps one rewrap request; ~100–250 items amortise the HTTP cost (reference §4.2) while
// keeping requests far below Vault's 32 MB limit and inside the per-call timeout.
const maxBatch = 250

// Rewrap implements ports.TokenCipher with transit's batch rewrap, so plaintext never leaves
// Vault. Items are sent in chunks of maxBatch; an item that is not a valid Vault value for a valid
// binding fails alone without being sent.
//
// Unlike batch encrypt and decrypt, rewrap has no partial_failure_response_code: it answers 200
// with per-item errors inside batch_results, and fails the whole request only for internal errors
// (reference §1.5), so every item's "error" field is checked.
func (c *Cipher) Rewrap(ctx context.Context, items []ports.RewrapItem) ([]ports.RewrapResult, error) {
	out := make([]ports.RewrapResult, len(items))
	for start := 0; start < len(items); start += maxBatch {
		end := min(start+maxBatch, len(items))
		if err := c.rewrapChunk(ctx, items[start:end], out[start:end], start); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// rewrapChunk rewraps one request's worth of items into out; offset numbers them in errors.
func (c *Cipher) rewrapChunk(ctx context.Context, items []ports.RewrapItem, out []ports.RewrapResult, offset int) error {
	batch := make([]map[string]any, 0, len(items))
	sent := make([]int, 0, len(items)) // batch position -> item index
	for i, it := range items {
		switch {
		case it.Binding.Validate() != nil:
			out[i].Err = fmt.Errorf("rewrap secret %d: %w", offset+i, it.Binding.Validate())
		case it.Sealed.Scheme() != Scheme:
			out[i].Err = fmt.Errorf("rewrap secret %d: not sealed by vault: %w", offset+i, domain.ErrSealedSecretInvalid)
		default:
			batch = append(batch, map[string]any{
				"ciphertext": it.Sealed.Ciphertext(),
				"context":    bindingContext(it.Binding),
				"reference":  strconv.Itoa(i),
			})
			sent = append(sent, i)
		}
	}
	if len(batch) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	resp, err := c.write(ctx, c.paths.rewrap, map[string]any{"batch_input": batch})
	if err != nil {
		return classify("rewrap secrets", err, true)
	}
	if resp == nil {
		return errors.New("rewrap secrets: vault returned no data")
	}
	results, _ := resp.Data["batch_results"].([]any)
	if len(results) != len(batch) {
		return fmt.Errorf("rewrap secrets: vault returned %d results for %d items", len(results), len(batch))
	}
	for pos, raw := range results {
		i := sent[pos]
		r, _ := raw.(map[string]any)
		if ref, _ := r["reference"].(string); ref != strconv.Itoa(i) {
			return fmt.Errorf("rewrap secrets: vault returned results out of order at %d", pos)
		}
		if msg, _ := r["error"].(string); msg != "" {
			out[i].Err = fmt.Errorf("rewrap secret %d: vault refused the ciphertext: %s: %w", offset+i, msg, domain.ErrSealedSecretInvalid)
			continue
		}
		s, err := parseCiphertext(r["ciphertext"], r["key_version"])
		if err != nil {
			out[i].Err = fmt.Errorf("rewrap secret %d: %w", offset+i, err)
			continue
		}
		out[i].Sealed = s
	}
	return nil
}
