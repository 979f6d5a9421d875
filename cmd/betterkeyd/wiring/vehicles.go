package wiring

import (
	"go.opentelemetry.io/otel/trace"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/betterkey/backend/adapters/smartcar"
	"github.com/betterkey/backend/app/vehiclelink"
	"github.com/betterkey/backend/cmd/betterkeyd/config"
	"github.com/betterkey/backend/ports"
)

func newVehicleAPI(cfg config.Config, tp trace.TracerProvider) (ports.VehicleAPI, error) {
	sc := smartcar.Config{
		ConnectURL: cfg.SmartcarConnectURL, AuthURL: cfg.SmartcarAuthURL, APIURL: cfg.SmartcarAPIURL,
		VehicleURL: cfg.SmartcarVehicleURL, IAMURL: cfg.SmartcarIAMURL, ManagementURL: cfg.SmartcarManagementURL,
		API:      smartcar.API(cfg.SmartcarAPI),
		ClientID: cfg.SmartcarClientID, ClientSecret: cfg.SmartcarClientSecret, RedirectURI: cfg.SmartcarRedirectURI,
		Mode: smartcar.Mode(cfg.SmartcarMode),
	}
	if len(cfg.SmartcarWebhookSecrets) > 0 { // the Application Management Token signs webhooks too
		sc.ManagementToken = cfg.SmartcarWebhookSecrets[0]
	}
	return smartcar.NewAPI(sc, tracedClient(tp))
}

func newVehicleLink(states ports.ConnectStateStore, conns ports.ConnectionStore, api ports.VehicleAPI, c ports.TokenCipher, reg *prometheus.Registry) (*vehiclelink.Service, error) {
	refreshes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "betterkey", Subsystem: "vehicle", Name: "token_refreshes_total",
		Help: "Smartcar token refresh attempts by outcome (renewed, shared, needs_reauth, revoked, failed).",
	}, []string{"outcome"})
	if err := reg.Register(refreshes); err != nil {
		return nil, err
	}
	return vehiclelink.New(vehiclelink.Deps{
		States: states, Connections: conns, API: api, Cipher: c,
		Refreshed: func(outcome string) { refreshes.WithLabelValues(outcome).Inc() },
	}, vehiclelink.Config{}), nil
}
