package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/betterkey/backend/domain"
	"github.com/betterkey/backend/ports"
)

// Commands is an in-memory ports.CommandStore. One mutex serialises every call, which is what
// the database's transactions and row locks amount to in a single process; Update's fn runs
// under it, so it must not call the store.
type Commands struct {
	mu       sync.Mutex
	commands map[domain.CommandID]domain.Command
	guards   map[domain.VehicleID]commandGuard
	keys     map[idempotencyKey]domain.CommandID
	vehicles *Connections
	audit    []domain.AuditEntry
}

// commandGuard is a vehicle's in-flight lease.
type commandGuard struct {
	user    domain.UserID
	command domain.CommandID
	until   time.Time
}

type idempotencyKey struct {
	user domain.UserID
	key  string
}

var _ ports.CommandStore = (*Commands)(nil)

// NewCommands returns an empty store. vehicles, when not nil, is the connection store whose
// vehicles exist, so that a command for an unknown vehicle is refused as the database refuses it.
func NewCommands(vehicles *Connections) *Commands {
	return &Commands{
		commands: map[domain.CommandID]domain.Command{},
		guards:   map[domain.VehicleID]commandGuard{},
		keys:     map[idempotencyKey]domain.CommandID{},
		vehicles: vehicles,
	}
}

// Admit implements ports.CommandStore.
func (s *Commands) Admit(_ context.Context, cmd domain.Command, leaseUntil time.Time, limit ports.CommandRateLimit, now time.Time) (ports.Admission, error) {
	if err := cmd.Validate(); err != nil {
		return ports.Admission{}, fmt.Errorf("admit command: %w", err)
	}
	if cmd.Status != domain.CommandAccepted {
		return ports.Admission{}, fmt.Errorf("admit command: %w", domain.Invalid("command.status", "must be accepted"))
	}
	cmd, now, leaseUntil = normCommand(cmd), dbTime(now), dbTime(leaseUntil)
	s.mu.Lock()
	defer s.mu.Unlock()
	var st domain.AdmissionState
	if cmd.IdempotencyKey != "" {
		if id, ok := s.keys[idempotencyKey{cmd.UserID, cmd.IdempotencyKey}]; ok {
			prior := s.commands[id]
			st.Prior = &prior
		}
	}
	if st.Prior == nil && !s.vehicleExists(cmd.VehicleID) {
		return ports.Admission{}, fmt.Errorf("admit command: vehicle: %w", domain.ErrNotFound)
	}
	if g, ok := s.guards[cmd.VehicleID]; ok {
		st.Lease = &domain.CommandLease{CommandID: g.command, Until: g.until}
	}
	st.Recent = s.recent(cmd, limit, now)
	decision, err := domain.DecideAdmission(st, limit, now)
	switch {
	case err != nil:
		return ports.Admission{}, err
	case decision.Replay:
		return ports.Admission{Command: *st.Prior, Replayed: true}, nil
	}
	if _, taken := s.commands[cmd.ID]; taken {
		return ports.Admission{}, fmt.Errorf("admit command: id is taken: %w", domain.ErrConflict)
	}
	if decision.TakeOver {
		for id, c := range s.commands {
			if c.VehicleID == cmd.VehicleID && c.Status.InFlight() {
				if err := c.Abandon(now); err == nil {
					s.commands[id] = normCommand(c)
				}
			}
		}
	}
	s.guards[cmd.VehicleID] = commandGuard{user: cmd.UserID, command: cmd.ID, until: leaseUntil}
	s.commands[cmd.ID] = cmd
	if cmd.IdempotencyKey != "" {
		s.keys[idempotencyKey{cmd.UserID, cmd.IdempotencyKey}] = cmd.ID
	}
	return ports.Admission{Command: cmd}, nil
}

// vehicleExists asks the connection store, when there is one; callers hold mu, and the
// connection store never calls back, so the lock order is fixed.
func (s *Commands) vehicleExists(id domain.VehicleID) bool {
	if s.vehicles == nil {
		return true
	}
	s.vehicles.mu.Lock()
	defer s.vehicles.mu.Unlock()
	_, ok := s.vehicles.vehicles[id]
	return ok
}

// recent is domain.AdmissionState.Recent: the creation times of the user's commands of the
// action inside the window; callers hold mu.
func (s *Commands) recent(cmd domain.Command, limit ports.CommandRateLimit, now time.Time) []time.Time {
	if limit.Max <= 0 {
		return nil
	}
	since := now.Add(-limit.Window)
	var recent []time.Time
	for _, c := range s.commands {
		if c.UserID == cmd.UserID && c.Action == cmd.Action && c.CreatedAt.After(since) {
			recent = append(recent, c.CreatedAt)
		}
	}
	return recent
}

// Get implements ports.CommandStore.
func (s *Commands) Get(_ context.Context, id domain.CommandID) (domain.Command, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.commands[id]
	if !ok {
		return domain.Command{}, fmt.Errorf("get command: %w", domain.ErrNotFound)
	}
	return c, nil
}

// ByIdempotencyKey implements ports.CommandStore.
func (s *Commands) ByIdempotencyKey(_ context.Context, user domain.UserID, key string) (domain.Command, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.keys[idempotencyKey{user, key}]
	if !ok || key == "" {
		return domain.Command{}, fmt.Errorf("get command by idempotency key: %w", domain.ErrNotFound)
	}
	return s.commands[id], nil
}

// History implements ports.CommandStore.
func (s *Commands) History(_ context.Context, user domain.UserID, vehicle domain.VehicleID, before domain.CommandID, limit int) ([]domain.Command, error) {
	return s.history(user, vehicle, before, limit)
}

// UserHistory implements ports.CommandStore.
func (s *Commands) UserHistory(_ context.Context, user domain.UserID, before domain.CommandID, limit int) ([]domain.Command, error) {
	return s.history(user, "", before, limit)
}

// history pages through the user's commands of vehicle, or of every vehicle when it is empty.
func (s *Commands) history(user domain.UserID, vehicle domain.VehicleID, before domain.CommandID, limit int) ([]domain.Command, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ofVehicle := func(c domain.Command) bool { return vehicle == "" || c.VehicleID == vehicle }
	var cursor *domain.Command
	if before != "" {
		c, ok := s.commands[before]
		if !ok || c.UserID != user || !ofVehicle(c) {
			return nil, fmt.Errorf("list commands: cursor: %w", domain.ErrNotFound)
		}
		cursor = &c
	}
	var out []domain.Command
	for _, c := range s.commands {
		if c.UserID == user && ofVehicle(c) && (cursor == nil || newerFirst(*cursor, c) < 0) {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, newerFirst)
	return out[:min(max(limit, 0), len(out))], nil
}

// newerFirst orders commands as the database's history index does: newest first, ties by id
// descending.
func newerFirst(a, b domain.Command) int {
	return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(b.ID, a.ID))
}

// Dispatch implements ports.CommandStore.
func (s *Commands) Dispatch(_ context.Context, id domain.CommandID, now, leaseUntil time.Time) (domain.Command, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.commands[id]
	if !ok {
		return domain.Command{}, fmt.Errorf("dispatch command: %w", domain.ErrNotFound)
	}
	return s.dispatch(c, dbTime(now), dbTime(leaseUntil))
}

// dispatch moves c to dispatched and extends its lease; callers hold mu.
func (s *Commands) dispatch(c domain.Command, now, leaseUntil time.Time) (domain.Command, error) {
	if err := c.Dispatch(now); err != nil {
		return domain.Command{}, fmt.Errorf("dispatch command: %w", err)
	}
	g, ok := s.guards[c.VehicleID]
	if !ok || g.command != c.ID || !now.Before(g.until) {
		return domain.Command{}, fmt.Errorf("dispatch command: lease lost: %w", domain.ErrCommandStateConflict)
	}
	g.until = leaseUntil
	s.guards[c.VehicleID] = g
	c = normCommand(c)
	s.commands[c.ID] = c
	return c, nil
}

// ClaimAccepted implements ports.CommandStore.
func (s *Commands) ClaimAccepted(_ context.Context, createdBefore, now, leaseUntil time.Time, limit int) ([]domain.Command, error) {
	now, leaseUntil = dbTime(now), dbTime(leaseUntil)
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []domain.Command
	for _, c := range s.commands {
		g := s.guards[c.VehicleID]
		if c.Status == domain.CommandAccepted && c.CreatedAt.Before(createdBefore) && now.Before(c.Deadline) &&
			g.command == c.ID && now.Before(g.until) {
			due = append(due, c)
		}
	}
	slices.SortFunc(due, func(a, b domain.Command) int { return -newerFirst(a, b) })
	out := make([]domain.Command, 0, min(max(limit, 0), len(due)))
	for _, c := range due[:cap(out)] {
		d, err := s.dispatch(c, now, leaseUntil)
		if err != nil {
			return nil, fmt.Errorf("claim accepted commands: %w", err)
		}
		out = append(out, d)
	}
	return out, nil
}

// Renew implements ports.CommandStore.
func (s *Commands) Renew(_ context.Context, id domain.CommandID, now, leaseUntil time.Time) (bool, error) {
	now, leaseUntil = dbTime(now), dbTime(leaseUntil)
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.commands[id]
	if !ok {
		return false, nil
	}
	g, ok := s.guards[c.VehicleID]
	if !ok || g.command != id || !now.Before(g.until) {
		return false, nil
	}
	g.until = leaseUntil
	s.guards[c.VehicleID] = g
	return true, nil
}

// Update implements ports.CommandStore.
func (s *Commands) Update(_ context.Context, id domain.CommandID, fn func(*domain.Command) error) (domain.Command, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	before, ok := s.commands[id]
	if !ok {
		return domain.Command{}, fmt.Errorf("update command: %w", domain.ErrNotFound)
	}
	if before.Status.Final() {
		return domain.Command{}, fmt.Errorf("update command: it is %s: %w", before.Status, domain.ErrCommandStateConflict)
	}
	next := before
	if err := fn(&next); err != nil {
		return domain.Command{}, err
	}
	next = keepImmutable(before, next)
	if next.Status != before.Status && !before.Status.CanBecome(next.Status) {
		return domain.Command{}, fmt.Errorf("update command: %s to %s: %w", before.Status, next.Status, domain.ErrCommandStateConflict)
	}
	next = normCommand(next)
	s.commands[id] = next
	if next.Status.Final() {
		s.release(next)
	}
	return next, nil
}

// Sweep implements ports.CommandStore.
func (s *Commands) Sweep(_ context.Context, now time.Time, limit int) ([]domain.Command, error) {
	now = dbTime(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []domain.Command
	for _, c := range s.commands {
		if !c.Status.InFlight() {
			continue
		}
		g, held := s.guards[c.VehicleID]
		held = held && g.command == c.ID && now.Before(g.until)
		if !held || (c.Status == domain.CommandAccepted && !now.Before(c.Deadline)) {
			due = append(due, c)
		}
	}
	slices.SortFunc(due, func(a, b domain.Command) int { return -newerFirst(a, b) })
	out := make([]domain.Command, 0, min(max(limit, 0), len(due)))
	for _, c := range due[:cap(out)] {
		if err := c.Abandon(now); err != nil {
			return nil, fmt.Errorf("sweep commands: %w", err)
		}
		c = normCommand(c)
		s.commands[c.ID] = c
		s.release(c)
		out = append(out, c)
	}
	return out, nil
}

// release drops the vehicle's guard if c holds it; callers hold mu.
func (s *Commands) release(c domain.Command) {
	if g, ok := s.guards[c.VehicleID]; ok && g.command == c.ID {
		delete(s.guards, c.VehicleID)
	}
}

// keepImmutable restores what an update may not change.
func keepImmutable(before, next domain.Command) domain.Command {
	next.ID, next.UserID, next.VehicleID, next.ConnectionID = before.ID, before.UserID, before.VehicleID, before.ConnectionID
	next.Action, next.IdempotencyKey, next.SessionID, next.Device = before.Action, before.IdempotencyKey, before.SessionID, before.Device
	next.CreatedAt, next.Deadline = before.CreatedAt, before.Deadline
	return next
}

// normCommand gives c the form a database returns: UTC times at microsecond precision and a
// Retry-After in whole seconds.
func normCommand(c domain.Command) domain.Command {
	c.CreatedAt, c.UpdatedAt, c.Deadline = dbTime(c.CreatedAt), dbTime(c.UpdatedAt), dbTime(c.Deadline)
	c.DispatchedAt, c.FinishedAt = dbTimePtr(c.DispatchedAt), dbTimePtr(c.FinishedAt)
	if c.RetryAfter > 0 {
		c.RetryAfter = time.Duration(domain.CeilSeconds(c.RetryAfter)) * time.Second
	} else {
		c.RetryAfter = 0
	}
	return c
}

func dbTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := dbTime(*t)
	return &v
}

// ArchiveHistory implements ports.CommandStore; the entries go to Audit.
func (s *Commands) ArchiveHistory(_ context.Context, user domain.UserID, now time.Time) ([]domain.AuditEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cmds []domain.Command
	for _, c := range s.commands {
		if c.UserID == user {
			cmds = append(cmds, c)
		}
	}
	if len(cmds) == 0 {
		return nil, nil
	}
	slices.SortFunc(cmds, func(a, b domain.Command) int { return newerFirst(b, a) })
	for _, c := range cmds {
		delete(s.commands, c.ID)
		if c.IdempotencyKey != "" {
			delete(s.keys, idempotencyKey{user: user, key: c.IdempotencyKey})
		}
	}
	for v, g := range s.guards {
		if g.user == user {
			delete(s.guards, v)
		}
	}
	entries := domain.PseudonymizeHistory(cmds, dbTime(now))
	s.audit = append(s.audit, entries...)
	return entries, nil
}

// DeleteFinished implements ports.CommandStore.
func (s *Commands) DeleteFinished(_ context.Context, before time.Time, limit int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, c := range s.commands {
		if n >= limit {
			break
		}
		if c.Status.InFlight() || !c.CreatedAt.Before(before) {
			continue
		}
		delete(s.commands, id)
		if c.IdempotencyKey != "" {
			delete(s.keys, idempotencyKey{user: c.UserID, key: c.IdempotencyKey})
		}
		n++
	}
	return n, nil
}

// DeleteAuditBefore implements ports.CommandStore.
func (s *Commands) DeleteAuditBefore(_ context.Context, before time.Time, limit int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	s.audit = slices.DeleteFunc(s.audit, func(e domain.AuditEntry) bool {
		if n < limit && e.CreatedAt.Before(before) {
			n++
			return true
		}
		return false
	})
	return n, nil
}

// Audit returns every audit entry archived so far, for tests.
func (s *Commands) Audit() []domain.AuditEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.audit)
}
