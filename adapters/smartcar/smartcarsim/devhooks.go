package smartcarsim

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
)

// devDeliverRequest asks the simulator to push lock-state webhooks now.
type devDeliverRequest struct {
	// URL receives the deliveries (default Options.WebhookURL).
	URL string `json:"url"`
	// VehicleID limits the push to one car (default: every car).
	VehicleID string `json:"vehicle_id"`
}

// handleDevDeliver is a development helper (POST /sim/webhooks/lock-state): it builds a signed
// lock-state event for each car, as Smartcar would after a change, and delivers them with the
// usual retries. It answers with how many deliveries were accepted, so the first-run walkthrough
// can receive a webhook on a machine with no network.
func (s *Simulator) handleDevDeliver(w http.ResponseWriter, r *http.Request) {
	var req devDeliverRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil && err != io.EOF {
		http.Error(w, "body must be JSON {url?, vehicle_id?}", http.StatusBadRequest)
		return
	}
	target := req.URL
	if target == "" {
		target = s.opts.WebhookURL
	}
	if !strings.HasPrefix(target, "http://") && !strings.HasPrefix(target, "https://") {
		http.Error(w, "no webhook url: pass {\"url\": …} or configure Options.WebhookURL", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	ids := make([]string, 0, len(s.vehicles))
	for id := range s.vehicles {
		if req.VehicleID == "" || req.VehicleID == id {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	slices.Sort(ids)
	delivered := 0
	for _, id := range ids {
		e, err := s.LockStateEvent(id, Drift{})
		if err != nil {
			continue
		}
		if _, err := s.Deliver(r.Context(), target, e); err == nil {
			delivered++
		}
	}
	writeJSON(w, http.StatusOK, map[string]int{"vehicles": len(ids), "delivered": delivered})
}
