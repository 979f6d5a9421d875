package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/betterkey/backend/domain"
)

// vehicleRow is the vehicles table with its cached status columns, which are NULL until a status
// is recorded (status_observed_at tells).
type vehicleRow struct {
	ID               string     `gorm:"column:id;primaryKey"`
	UserID           string     `gorm:"column:user_id"`
	ConnectionID     string     `gorm:"column:connection_id"`
	SmartcarID       string     `gorm:"column:smartcar_id"`
	Make             string     `gorm:"column:make"`
	Model            string     `gorm:"column:model"`
	Year             int        `gorm:"column:year"`
	CreatedAt        time.Time  `gorm:"column:created_at;autoCreateTime:false"`
	Locked           *bool      `gorm:"column:locked"`
	Doors            *string    `gorm:"column:doors"`
	Windows          *string    `gorm:"column:windows"`
	StatusObservedAt *time.Time `gorm:"column:status_observed_at"`
	StatusFetchedAt  *time.Time `gorm:"column:status_fetched_at"`
	StatusSource     *string    `gorm:"column:status_source"`
}

func (vehicleRow) TableName() string { return "vehicles" }

// vehicleViewRow is a vehicle joined with its connection's status and scopes.
type vehicleViewRow struct {
	vehicleRow
	ConnectionStatus string
	ConnectionScopes string
}

// scan reads one row of selectVehicleViews, in its column order.
func (r *vehicleViewRow) scan(rows *sql.Rows) error {
	return rows.Scan(&r.ID, &r.UserID, &r.ConnectionID, &r.SmartcarID, &r.Make, &r.Model, &r.Year, &r.CreatedAt,
		&r.Locked, &r.Doors, &r.Windows, &r.StatusObservedAt, &r.StatusFetchedAt, &r.StatusSource,
		&r.ConnectionStatus, &r.ConnectionScopes)
}

func (r vehicleRow) toVehicle() domain.Vehicle {
	return domain.Vehicle{
		ID: domain.VehicleID(r.ID), UserID: domain.UserID(r.UserID), ConnectionID: domain.ConnectionID(r.ConnectionID),
		SmartcarID: r.SmartcarID, Make: r.Make, Model: r.Model, Year: r.Year, CreatedAt: r.CreatedAt.UTC(),
	}
}

func (r vehicleViewRow) toDomain() (domain.VehicleView, error) {
	v := domain.VehicleView{
		Vehicle:          r.toVehicle(),
		ConnectionStatus: domain.ConnectionStatus(r.ConnectionStatus),
		Scopes:           splitScopes(r.ConnectionScopes),
	}
	if r.StatusObservedAt == nil {
		return v, nil
	}
	st := domain.VehicleStatus{VehicleID: v.ID, Locked: r.Locked, ObservedAt: r.StatusObservedAt.UTC()}
	if r.StatusFetchedAt != nil {
		st.FetchedAt = r.StatusFetchedAt.UTC()
	}
	if r.StatusSource != nil {
		st.Source = domain.StatusSource(*r.StatusSource)
	}
	var err error
	if st.Doors, err = openingsFrom(r.Doors); err != nil {
		return domain.VehicleView{}, fmt.Errorf("decode doors of vehicle: %w", err)
	}
	if st.Windows, err = openingsFrom(r.Windows); err != nil {
		return domain.VehicleView{}, fmt.Errorf("decode windows of vehicle: %w", err)
	}
	v.Status = &st
	return v, nil
}

// openingJSON is the frozen layout of one opening in the doors and windows columns.
type openingJSON struct {
	Type   string `json:"type"`
	Status string `json:"status"`
}

// openingsColumn encodes openings for storage; no openings is NULL.
func openingsColumn(o []domain.Opening) *string {
	if len(o) == 0 {
		return nil
	}
	out := make([]openingJSON, len(o))
	for i, x := range o {
		out[i] = openingJSON{Type: x.Type, Status: string(x.Status)}
	}
	b, _ := json.Marshal(out) // cannot fail: strings only
	s := string(b)
	return &s
}

func openingsFrom(col *string) ([]domain.Opening, error) {
	if col == nil || *col == "" {
		return nil, nil
	}
	var in []openingJSON
	if err := json.Unmarshal([]byte(*col), &in); err != nil {
		return nil, err
	}
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]domain.Opening, len(in))
	for i, x := range in {
		out[i] = domain.Opening{Type: x.Type, Status: domain.OpeningStatus(x.Status)}
	}
	return out, nil
}

// selectVehicleViews is the read path of GET /v1/vehicles: one indexed join of a user's vehicles
// with their connections, the cached status sitting in the vehicle row. No sealed_secrets column
// is read.
const selectVehicleViews = `SELECT v.id, v.user_id, v.connection_id, v.smartcar_id, v.make, v.model, v.year,
	v.created_at, v.locked, v.doors, v.windows, v.status_observed_at, v.status_fetched_at, v.status_source,
	c.status, c.scopes
FROM vehicles v JOIN connections c ON c.id = v.connection_id
WHERE v.user_id = ?`

// Vehicles implements ports.ConnectionStore; ties on the creation time fall back to the id so the
// order is the same in every store.
func (s *Connections) Vehicles(ctx context.Context, user domain.UserID) ([]domain.VehicleView, error) {
	if !domain.ValidID(string(user)) {
		return nil, nil
	}
	return s.readViews(ctx, "list vehicles", selectVehicleViews+" ORDER BY v.created_at, v.id", string(user))
}

// Vehicle implements ports.ConnectionStore; the owner is part of the query, so another user's
// vehicle is simply not found.
func (s *Connections) Vehicle(ctx context.Context, user domain.UserID, id domain.VehicleID) (domain.VehicleView, error) {
	if !domain.ValidID(string(user)) || !domain.ValidID(string(id)) {
		return domain.VehicleView{}, fmt.Errorf("get vehicle: %w", domain.ErrNotFound)
	}
	views, err := s.readViews(ctx, "get vehicle", selectVehicleViews+" AND v.id = ?", string(user), string(id))
	if err != nil {
		return domain.VehicleView{}, err
	}
	if len(views) == 0 {
		return domain.VehicleView{}, fmt.Errorf("get vehicle: %w", domain.ErrNotFound)
	}
	return views[0], nil
}

// readViews runs a selectVehicleViews query and scans its rows by hand: this is the hot read
// path, and a fixed column list needs no reflection.
func (s *Connections) readViews(ctx context.Context, op, query string, args ...any) ([]domain.VehicleView, error) {
	rows, err := s.db.r.WithContext(ctx).Raw(query, args...).Rows()
	if err != nil {
		return nil, translate(op, err)
	}
	defer rows.Close()
	var out []domain.VehicleView
	for rows.Next() {
		var r vehicleViewRow
		if err := r.scan(rows); err != nil {
			return nil, translate(op, err)
		}
		v, err := r.toDomain()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(op, err)
	}
	return out, nil
}

// DeleteVehicle implements ports.ConnectionStore. It takes the connection's row lock before
// deleting, so concurrent removals of a connection's vehicles run one after another and exactly
// the one that finds no vehicle left removes the connection and its sealed token set.
func (s *Connections) DeleteVehicle(ctx context.Context, user domain.UserID, id domain.VehicleID) (bool, error) {
	if !domain.ValidID(string(user)) || !domain.ValidID(string(id)) {
		return false, fmt.Errorf("delete vehicle: %w", domain.ErrNotFound)
	}
	var removed bool
	err := s.db.transact(ctx, func(tx *gorm.DB) error {
		var owner []string
		err := tx.Model(&vehicleRow{}).Where("id = ? AND user_id = ?", string(id), string(user)).Limit(1).Pluck("connection_id", &owner).Error
		if err != nil {
			return translate("find vehicle", err)
		}
		if len(owner) == 0 {
			return domain.ErrNotFound
		}
		conn, err := lockConnection(tx, "id = ?", owner[0])
		if err != nil {
			return err
		}
		res := tx.Where("id = ?", string(id)).Delete(&vehicleRow{})
		if res.Error != nil {
			return translate("delete vehicle", res.Error)
		}
		if len(conn) == 0 || res.RowsAffected == 0 { // removed by a concurrent call before the lock
			return domain.ErrNotFound
		}
		var left []string
		if err := tx.Model(&vehicleRow{}).Where("connection_id = ?", owner[0]).Limit(1).Pluck("id", &left).Error; err != nil {
			return translate("count vehicles", err)
		}
		if len(left) > 0 {
			return nil
		}
		if err := deleteSecret(tx, conn[0].toDomain(domain.SealedSecret{}).TokenBinding()); err != nil {
			return err
		}
		removed = true
		return translate("delete connection", tx.Where("id = ?", owner[0]).Delete(&connectionRow{}).Error)
	})
	if err != nil {
		return false, fmt.Errorf("delete vehicle: %w", err)
	}
	return removed, nil
}

// SaveStatus implements ports.ConnectionStore with one conditional UPDATE: the database writes
// the status only over an older observation (domain.VehicleStatus.Supersedes, as a
// compare-and-set in the WHERE: on the webhook hot path one statement instead of a locked
// read-decide-write transaction), so of concurrent saves the newest wins whatever order they
// arrive in. Only when nothing was written does a second query tell an older
// observation from a missing vehicle.
func (s *Connections) SaveStatus(ctx context.Context, st domain.VehicleStatus) (bool, error) {
	if st.ObservedAt.IsZero() {
		return false, fmt.Errorf("save vehicle status: %w", domain.Invalid("status.observed_at", "must be set"))
	}
	if !domain.ValidID(string(st.VehicleID)) {
		return false, fmt.Errorf("save vehicle status: %w", domain.ErrNotFound)
	}
	observed, fetched, source := dbTime(st.ObservedAt), dbTime(st.FetchedAt), string(st.Source)
	res := s.db.w.WithContext(ctx).Model(&vehicleRow{}).
		Where("id = ? AND (status_observed_at IS NULL OR status_observed_at < ?)", string(st.VehicleID), observed).
		Updates(map[string]any{
			"locked":             st.Locked,
			"doors":              openingsColumn(st.Doors),
			"windows":            openingsColumn(st.Windows),
			"status_observed_at": observed,
			"status_fetched_at":  fetched,
			"status_source":      source,
		})
	if res.Error != nil {
		return false, translate("save vehicle status", res.Error)
	}
	if res.RowsAffected > 0 {
		return true, nil
	}
	var ids []string
	if err := s.db.r.WithContext(ctx).Model(&vehicleRow{}).Where("id = ?", string(st.VehicleID)).Limit(1).Pluck("id", &ids).Error; err != nil {
		return false, translate("save vehicle status", err)
	}
	if len(ids) == 0 {
		return false, fmt.Errorf("save vehicle status: %w", domain.ErrNotFound)
	}
	return false, nil
}

// selectVehicleViewsBySmartcarID is selectVehicleViews keyed by Smartcar's vehicle id across
// users (over vehicles_smartcar_id_idx); an empty Smartcar user matches every connection.
const selectVehicleViewsBySmartcarID = `SELECT v.id, v.user_id, v.connection_id, v.smartcar_id, v.make, v.model, v.year,
	v.created_at, v.locked, v.doors, v.windows, v.status_observed_at, v.status_fetched_at, v.status_source,
	c.status, c.scopes
FROM vehicles v JOIN connections c ON c.id = v.connection_id
WHERE v.smartcar_id = ? AND (? = '' OR c.smartcar_user_id = ?)
ORDER BY v.created_at, v.id`

// VehiclesBySmartcarID implements ports.ConnectionStore.
func (s *Connections) VehiclesBySmartcarID(ctx context.Context, smartcarVehicleID, smartcarUserID string) ([]domain.VehicleView, error) {
	if smartcarVehicleID == "" {
		return nil, nil
	}
	return s.readViews(ctx, "list vehicles by smartcar id", selectVehicleViewsBySmartcarID, smartcarVehicleID, smartcarUserID, smartcarUserID)
}
