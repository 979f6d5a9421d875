package httpapi

import (
	"errors"
	"io"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/betterkey/backend/app/webhook"
	"github.com/betterkey/backend/domain"
)

// Paths of the pushed-event routes (SPEC §11).
const (
	smartcarWebhookPath   = "/v1/webhooks/smartcar"
	appleNotificationPath = "/v1/apple/notifications"
)

// maxWebhookBody caps a Smartcar delivery, independently of the app's request cap. Smartcar
// documents 50 KB at most; the cap leaves room for shape drift while keeping a flood of forged
// deliveries cheap, since the signature is computed over every byte read.
const maxWebhookBody = 256 << 10

// webhookMetrics count deliveries by outcome and, separately, signature failures, which an
// operator alerts on: a burst means a forger or a rotated secret we do not know.
type webhookMetrics struct {
	signatureFailures *prometheus.CounterVec
	deliveries        *prometheus.CounterVec
}

func newWebhookMetrics(reg prometheus.Registerer) (*webhookMetrics, error) {
	m := &webhookMetrics{
		signatureFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "betterkey", Subsystem: "webhook", Name: "signature_failures_total",
			Help: "Pushed deliveries refused because their signature (Smartcar) or signed token (Apple) did not verify.",
		}, []string{"source"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "betterkey", Subsystem: "webhook", Name: "deliveries_total",
			Help: "Pushed deliveries by outcome: stored, duplicate, poison, verify, or the kind of refusal.",
		}, []string{"source", "outcome"}),
	}
	for _, c := range []prometheus.Collector{m.signatureFailures, m.deliveries} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// refused counts a delivery that was turned away with err.
func (m *webhookMetrics) refused(source domain.EventSource, err error) {
	outcome := "refused_" + domain.KindOf(err).String()
	if errors.Is(err, domain.ErrWebhookSignature) || errors.Is(err, domain.ErrInvalidNotification) {
		m.signatureFailures.WithLabelValues(string(source)).Inc()
		outcome = "bad_signature"
	}
	m.deliveries.WithLabelValues(string(source), outcome).Inc()
}

// mountWebhooks registers the pushed-event routes on r. It must run before New installs the
// global middleware: the Smartcar route reads its body under its own cap, which the app-wide
// limitBody would undercut, so both routes get the global chain spelled out here instead, the
// Apple route with limitBody, the Smartcar route without it. Keep the chain in step with New's.
func (a *api) mountWebhooks(r *gin.Engine) error {
	if a.Webhooks == nil {
		return nil
	}
	m, err := newWebhookMetrics(a.Registry)
	if err != nil {
		return err
	}
	chain := []gin.HandlerFunc{withRequestID, a.accessLog, a.recoverPanics, a.withDeadline, a.secureTransport, a.admit}
	r.POST(smartcarWebhookPath, append(slices.Clone(chain), a.smartcarWebhook(m))...)
	r.POST(appleNotificationPath, append(slices.Clone(chain), a.limitBody, a.appleNotification(m))...)
	return nil
}

// smartcarWebhook takes a Smartcar delivery: the raw bytes, under the cap, go to the use case
// untouched, since the signature is over exactly those bytes. Smartcar ignores the answer's body
// except for verify, which gets {"challenge"}.
func (a *api) smartcarWebhook(m *webhookMetrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > maxWebhookBody {
			m.refused(domain.SourceSmartcar, domain.ErrTooLarge)
			a.fail(c, domain.ErrTooLarge)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxWebhookBody))
		if err != nil {
			err = decodeError(err)
			m.refused(domain.SourceSmartcar, err)
			a.fail(c, err)
			return
		}
		rec, err := a.Webhooks.IngestSmartcar(c.Request.Context(), body, c.GetHeader("SC-Signature"))
		if err != nil {
			m.refused(domain.SourceSmartcar, err)
			a.fail(c, err)
			return
		}
		m.deliveries.WithLabelValues(string(domain.SourceSmartcar), string(rec.Outcome)).Inc()
		if rec.Outcome == webhook.OutcomeVerify {
			c.JSON(http.StatusOK, gin.H{"challenge": rec.Challenge})
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "accepted"})
	}
}

// appleNotificationRequest is Apple's delivery: {"payload": "<JWS>"}.
type appleNotificationRequest struct {
	Payload string `json:"payload"`
}

// appleNotification takes an Apple server-to-server notification. Anything verified is answered
// 200, an unknown subject included; only an unverifiable payload is refused (401).
func (a *api) appleNotification(m *webhookMetrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		var req appleNotificationRequest
		if err := readJSON(c, &req, bodyFromVendor); err != nil {
			m.refused(domain.SourceApple, err)
			a.fail(c, err)
			return
		}
		if req.Payload == "" {
			err := domain.Invalid("payload", "is required")
			m.refused(domain.SourceApple, err)
			a.fail(c, err)
			return
		}
		rec, err := a.Webhooks.ReceiveApple(c.Request.Context(), req.Payload)
		if err != nil {
			m.refused(domain.SourceApple, err)
			a.fail(c, err)
			return
		}
		m.deliveries.WithLabelValues(string(domain.SourceApple), string(rec.Outcome)).Inc()
		c.JSON(http.StatusOK, gin.H{"status": "accepted"})
	}
}
