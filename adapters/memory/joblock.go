package memory

import (
	"github.com/betterkey/backend/adapters/internal/joblock"
	"github.com/betterkey/backend/ports"
)

// JobLock is an in-process ports.JobLock: one mutex per job name.
type JobLock = joblock.Local

var _ ports.JobLock = (*JobLock)(nil)
