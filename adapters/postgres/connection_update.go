package postgres

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/betterkey/backend/domain"
)

// Update implements ports.ConnectionStore. The connection row is locked for the whole
// transaction (SELECT … FOR UPDATE on PostgreSQL, the single writer on SQLite), so refreshes of
// one connection run one after another across every replica, each reading the token set the
// previous one stored; the new set is written before the commit, so no caller ever uses tokens
// the database does not hold. The id, owner, Smartcar user and creation time are fixed. A token
// set fn leaves as it found it is not written back, so a rewrap that replaced it meanwhile (the
// rewrap does not take the row lock) is kept; one fn clears is deleted. When fn returns an
// error the transaction rolls back and that very error is returned.
func (s *Connections) Update(ctx context.Context, id domain.ConnectionID, fn func(*domain.Connection) error) (domain.Connection, error) {
	if !domain.ValidID(string(id)) {
		return domain.Connection{}, fmt.Errorf("update connection: %w", domain.ErrNotFound)
	}
	var (
		saved domain.Connection
		fnErr error
	)
	err := s.db.transact(ctx, func(tx *gorm.DB) error {
		cur, err := lockConnection(tx, "id = ?", string(id))
		if err != nil {
			return err
		}
		if len(cur) == 0 {
			return domain.ErrNotFound
		}
		before := cur[0].toDomain(domain.SealedSecret{})
		if before.Tokens, err = readSecret(tx, before.TokenBinding()); err != nil {
			return err
		}
		next := before
		if fnErr = fn(&next); fnErr != nil {
			return fnErr
		}
		next.ID, next.UserID, next.SmartcarUserID, next.CreatedAt = before.ID, before.UserID, before.SmartcarUserID, before.CreatedAt
		if err := next.Validate(); err != nil {
			return err
		}
		row := connectionFromDomain(next)
		if err := saveConnection(tx, row); err != nil {
			return err
		}
		if next.Tokens.Ciphertext() != before.Tokens.Ciphertext() {
			if err := writeSecret(tx, next.TokenBinding(), next.Tokens, s.now()); err != nil {
				return err
			}
		}
		saved = row.toDomain(next.Tokens)
		return nil
	})
	if fnErr != nil {
		return domain.Connection{}, fnErr
	}
	if err != nil {
		return domain.Connection{}, fmt.Errorf("update connection: %w", err)
	}
	return saved, nil
}
