package smartcarsim

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// VehicleSpec describes a simulated car. Make is upper case as Smartcar sends it ("TESLA").
type VehicleSpec struct {
	Make  string
	Model string
	Year  int
	// VIN is the car's vehicle identification number; empty makes one up.
	VIN string
	// Unlocked starts the car unlocked; parked cars start locked.
	Unlocked bool
}

// DefaultFleet is the first run's garage: one car of the make a Connect demo most often shows and
// one of another make, so brand filtering can be tried.
func DefaultFleet() []VehicleSpec {
	return []VehicleSpec{
		{Make: "TESLA", Model: "Model 3", Year: 2023, VIN: "5YJ3E1EA7PF000001"},
		{Make: "FORD", Model: "Mustang Mach-E", Year: 2022, VIN: "3FMTK3SU5NM000002"},
	}
}

// User is a Smartcar user (a connected-services account) and the vehicles in it.
type User struct {
	ID         string
	VehicleIDs []string
}

// Condition is a simulated car's situation, which decides how it answers.
type Condition string

// The conditions. A parked car answers everything; an asleep or unreachable one refuses reads
// of its state and commands (409 VEHICLE_STATE); a driving one refuses commands (IN_MOTION), as
// Smartcar's vehicle simulator does.
const (
	ConditionParked      Condition = "PARKED"
	ConditionAsleep      Condition = "ASLEEP"
	ConditionUnreachable Condition = "UNREACHABLE"
	ConditionDriving     Condition = "DRIVING"
)

// Car is what a test can observe about a simulated car.
type Car struct {
	ID        string
	UserID    string
	Spec      VehicleSpec
	Locked    bool
	Commands  int // lock and unlock commands that reached the car
	Condition Condition
	// UpdatedAt is when the car last changed its lock state (sent as SC-Data-Age).
	UpdatedAt time.Time
}

// user is a Smartcar account.
type user struct {
	id       string
	vehicles []string
}

// vehicle is a simulated car's state.
type vehicle struct {
	id, userID       string
	spec             VehicleSpec
	locked           bool
	updatedAt        time.Time
	commands         int
	condition        Condition
	rateLimitedUntil time.Time
	// pending is the lock state a long-running v3 command reaches at pendingAt.
	pending   *bool
	pendingAt time.Time
}

// CreateUser adds a Smartcar user owning one vehicle per spec. The first user created is the one
// who consents in Connect unless a request or SetConsentUser names another.
func (s *Simulator) CreateUser(specs ...VehicleSpec) User {
	now := s.now()
	u := &user{id: newUUID()}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range specs {
		sp.Make = strings.ToUpper(sp.Make)
		if sp.VIN == "" {
			sp.VIN = newVIN()
		}
		v := &vehicle{id: newUUID(), userID: u.id, spec: sp, locked: !sp.Unlocked, updatedAt: now, condition: ConditionParked}
		s.vehicles[v.id] = v
		u.vehicles = append(u.vehicles, v.id)
	}
	s.users[u.id] = u
	s.order = append(s.order, u.id)
	return User{ID: u.id, VehicleIDs: slices.Clone(u.vehicles)}
}

// SetConsentUser makes userID the one who consents when a Connect request names no sim_user.
func (s *Simulator) SetConsentUser(userID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[userID]; !ok {
		return fmt.Errorf("set consent user: no user %q", userID)
	}
	s.consent = userID
	return nil
}

// Car returns a car's observable state.
func (s *Simulator) Car(vehicleID string) (Car, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vehicles[vehicleID]
	if !ok {
		return Car{}, false
	}
	v.settle(s.now())
	return Car{ID: v.id, UserID: v.userID, Spec: v.spec, Locked: v.locked, Commands: v.commands,
		Condition: v.condition, UpdatedAt: v.updatedAt}, true
}

// SetCondition puts a car to sleep, out of reach, on the road, or back in its parking space.
func (s *Simulator) SetCondition(vehicleID string, c Condition) error {
	return s.withVehicle("set condition", vehicleID, func(v *vehicle) { v.condition = c })
}

// RateLimit makes every request for the car answer 429 RATE_LIMIT:VEHICLE with Retry-After until
// d has passed on the simulator's clock; d = 0 lifts the limit.
func (s *Simulator) RateLimit(vehicleID string, d time.Duration) error {
	until := s.now().Add(d)
	return s.withVehicle("rate limit", vehicleID, func(v *vehicle) { v.rateLimitedUntil = until })
}

// SetLocked changes a car's lock state as if someone used the physical key.
func (s *Simulator) SetLocked(vehicleID string, locked bool) error {
	now := s.now()
	return s.withVehicle("set locked", vehicleID, func(v *vehicle) { v.locked, v.updatedAt = locked, now })
}

// RevokeConsent acts as the user revoking this application at Smartcar: every grant of the user
// dies, so access tokens answer 401 AUTHENTICATION and refresh tokens invalid_grant.
func (s *Simulator) RevokeConsent(userID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[userID]; !ok {
		return fmt.Errorf("revoke consent: no user %q", userID)
	}
	for _, g := range s.grants {
		if g.userID == userID {
			g.revoked = true
		}
	}
	return nil
}

func (s *Simulator) withVehicle(op, vehicleID string, f func(*vehicle)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vehicles[vehicleID]
	if !ok {
		return fmt.Errorf("%s: no vehicle %q", op, vehicleID)
	}
	f(v)
	return nil
}

// vinAlphabet is what a VIN is written in: digits and capitals without I, O and Q.
const vinAlphabet = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"

// newVIN makes up a 17-character VIN (the check digit is not computed; nothing here checks it).
func newVIN() string {
	id := strings.ReplaceAll(newUUID(), "-", "")
	b := make([]byte, 17)
	for i := range b {
		b[i] = vinAlphabet[int(id[i%len(id)]+byte(i))%len(vinAlphabet)]
	}
	return string(b)
}
