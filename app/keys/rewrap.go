package keys

import (
	"context"
	"fmt"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Batch sizes of the rewrap job. A batch is one cipher call (Vault sends up to 250 items per
// request) followed by one batched compare-and-swap in the store.
const (
	DefaultBatchSize = 250
	MaxBatchSize     = 1000
)

// Progress is the running account of a rewrap job, reported after every batch.
type Progress struct {
	// TargetVersion is the latest key version when the job started; it upgrades every secret
	// sealed below it.
	TargetVersion int
	// Batches is how many batches have been processed.
	Batches int
	// Done counts secrets upgraded by this job.
	Done int
	// Failed counts secrets the cipher could not rewrap (tampered, bound to another row, sealed
	// under a retired version or by another backend); they stay as they are and the job goes on.
	Failed int
	// Skipped counts secrets that a concurrent writer (a token refresh, a disconnect) replaced or
	// deleted between read and swap; the writer's value is kept, and it is sealed under the
	// latest version anyway.
	Skipped int
	// Remaining counts secrets still sealed below TargetVersion: an estimate while the job runs,
	// recounted when it ends. After a complete run it equals the secrets that failed.
	Remaining int
}

// Rewrap upgrades every stored secret sealed below the latest key version to the latest, batch by
// batch: the cipher re-seals a batch (the plaintext never reaches this job with Vault) and each
// new value replaces the old one only if the row still holds the old one, so a token refresh
// racing the job is never overwritten. progress, if not nil, is called after each batch.
//
// The job is resumable: rows already upgraded are no longer below the target, so a job that
// stopped (cancelled, crashed, the backend gone) is simply started again. Within a run the last
// binding of a batch is the cursor, so a secret that fails is not retried in a loop. A secret
// that fails is counted, never fatal; an error of the whole batch (backend unavailable, store
// down, ctx cancelled) ends the job and is returned with the progress so far.
//
// batchSize 0 takes DefaultBatchSize; it must not exceed MaxBatchSize.
func (s *Service) Rewrap(ctx context.Context, batchSize int, progress func(Progress)) (Progress, error) {
	switch {
	case batchSize == 0:
		batchSize = DefaultBatchSize
	case batchSize < 0 || batchSize > MaxBatchSize:
		return Progress{}, fmt.Errorf("rewrap secrets: %w", domain.Invalid("batch_size", "must be between 1 and 1000, or 0 for the default"))
	}
	kv, err := s.d.Keys.Versions(ctx)
	if err != nil {
		return Progress{}, fmt.Errorf("rewrap secrets: read key versions: %w", err)
	}
	p := Progress{TargetVersion: kv.Latest}
	if p.Remaining, err = s.below(ctx, p.TargetVersion); err != nil {
		return p, fmt.Errorf("rewrap secrets: %w", err)
	}
	var cursor domain.SecretBinding
	for {
		if err := ctx.Err(); err != nil {
			return p, fmt.Errorf("rewrap secrets: %w", err)
		}
		page, err := s.d.Secrets.BelowVersion(ctx, p.TargetVersion, cursor, batchSize)
		if err != nil {
			return p, fmt.Errorf("rewrap secrets: list secrets below version %d: %w", p.TargetVersion, err)
		}
		if len(page) == 0 {
			break
		}
		cursor = page[len(page)-1].Binding
		if err := s.rewrapBatch(ctx, page, &p); err != nil {
			return p, err
		}
		p.Batches++
		if progress != nil {
			progress(p)
		}
		if len(page) < batchSize {
			break
		}
	}
	if p.Remaining, err = s.below(ctx, p.TargetVersion); err != nil {
		return p, fmt.Errorf("rewrap secrets: %w", err)
	}
	return p, nil
}

// rewrapBatch re-seals one page and swaps each value in, updating p.
func (s *Service) rewrapBatch(ctx context.Context, page []ports.StoredSecret, p *Progress) error {
	items := make([]ports.RewrapItem, len(page))
	for i, x := range page {
		items[i] = ports.RewrapItem(x)
	}
	results, err := s.d.Cipher.Rewrap(ctx, items)
	if err != nil {
		return fmt.Errorf("rewrap secrets: %w", err)
	}
	if len(results) != len(items) {
		return fmt.Errorf("rewrap secrets: cipher returned %d results for %d secrets", len(results), len(items))
	}
	var swaps []ports.SecretSwap
	failed := 0
	for i, r := range results {
		if r.Err != nil || r.Sealed.KeyVersion() < p.TargetVersion {
			failed++
			continue
		}
		swaps = append(swaps, ports.SecretSwap{Binding: items[i].Binding, Old: items[i].Sealed, Replacement: r.Sealed})
	}
	p.Failed += failed
	if len(swaps) == 0 {
		return nil
	}
	swapped, err := s.d.Secrets.Replace(ctx, swaps)
	if err != nil {
		return fmt.Errorf("rewrap secrets: replace sealed secrets: %w", err)
	}
	done := 0
	for _, ok := range swapped {
		if ok {
			done++
		}
	}
	skipped := len(swaps) - done
	p.Done += done
	p.Skipped += skipped
	p.Remaining = max(0, p.Remaining-done-skipped)
	return nil
}

// below counts the stored secrets sealed under a version below v.
func (s *Service) below(ctx context.Context, v int) (int, error) {
	counts, err := s.d.Secrets.KeyVersionCounts(ctx)
	if err != nil {
		return 0, fmt.Errorf("count stored secrets: %w", err)
	}
	n := 0
	for version, c := range counts {
		if version < v {
			n += c
		}
	}
	return n, nil
}
