package smartcarsim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"
)

// Smartcar's delivery behaviour (reference §4.1): a 2xx within 15 s counts; three retries 25, 50
// and 100 s apart; then the event is dropped.
const (
	DefaultAttemptTimeout = 15 * time.Second
	webhookUserAgent      = "Smartcar/4.0 (simulator)"
)

// DefaultRetryDelays are the waits before Smartcar's second, third and fourth attempts.
func DefaultRetryDelays() []time.Duration {
	return []time.Duration{25 * time.Second, 50 * time.Second, 100 * time.Second}
}

// WebhookOptions tune delivery. Tests shorten the delays; everything else is Smartcar's.
type WebhookOptions struct {
	// ID and Name are the webhook's meta.webhookId and webhookName.
	ID, Name string
	// Mode is meta.mode (default "LIVE").
	Mode string
	// RetryDelays are the waits between attempts; nil means DefaultRetryDelays, an empty slice
	// means a single attempt.
	RetryDelays []time.Duration
	// AttemptTimeout bounds one attempt (default 15 s).
	AttemptTimeout time.Duration
	// Client sends deliveries (default: a plain client; the attempt timeout comes from ctx).
	Client *http.Client
	// UnsignedVerify sends VERIFY without SC-Signature, as one integration reports Smartcar does.
	UnsignedVerify bool
}

func (o WebhookOptions) withDefaults() WebhookOptions {
	if o.ID == "" {
		o.ID = newUUID()
	}
	if o.Name == "" {
		o.Name = "BetterKey simulator"
	}
	if o.Mode == "" {
		o.Mode = "LIVE"
	}
	if o.RetryDelays == nil {
		o.RetryDelays = DefaultRetryDelays()
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	return o
}

// Sign is Smartcar's webhook signature: lowercase hex HMAC-SHA256 of the raw body, keyed with
// the Application Management Token. No prefix, no timestamp.
func Sign(managementToken string, body []byte) string {
	m := hmac.New(sha256.New, []byte(managementToken))
	_, _ = m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// HashChallenge is the answer a VERIFY expects: hex HMAC-SHA256 of the challenge.
func HashChallenge(managementToken, challenge string) string {
	return Sign(managementToken, []byte(challenge))
}

// Attempt is one delivery attempt's result.
type Attempt struct {
	DeliveryID string
	Status     int   // 0 when no answer came
	Err        error // transport failure, nil when an answer came
}

// Delivery reports every attempt of one event.
type Delivery struct {
	EventID  string
	Attempts []Attempt
}

// Deliver POSTs e to url as Smartcar does: signed with the management token, a fresh delivery id
// per attempt, retried after each failure (anything but a 2xx within the attempt timeout) with
// the configured delays. It returns an error when every attempt failed or ctx ended.
func (s *Simulator) Deliver(ctx context.Context, url string, e Event) (Delivery, error) {
	o := s.opts.Webhook
	d := Delivery{EventID: e.ID}
	for i := 0; i <= len(o.RetryDelays); i++ {
		if i > 0 && !sleepCtx(ctx, o.RetryDelays[i-1]) {
			return d, fmt.Errorf("deliver webhook: %w", ctx.Err())
		}
		a, _, _ := s.attempt(ctx, url, e)
		d.Attempts = append(d.Attempts, a)
		if a.Err == nil && a.Status/100 == 2 {
			return d, nil
		}
	}
	last := d.Attempts[len(d.Attempts)-1]
	if last.Err != nil {
		return d, fmt.Errorf("deliver webhook: %d attempts failed: %w", len(d.Attempts), last.Err)
	}
	return d, fmt.Errorf("deliver webhook: %d attempts failed, last status %d", len(d.Attempts), last.Status)
}

// DeliverOnce POSTs e to url once, signed like Deliver, and returns the attempt with the answer's
// header and body: what a test needs to see how the backend refused a delivery it would retry.
func (s *Simulator) DeliverOnce(ctx context.Context, url string, e Event) (Attempt, http.Header, []byte) {
	return s.attempt(ctx, url, e)
}

// Verify sends a VERIFY event (built with NewVerifyEvent or NewLegacyVerifyEvent) once and checks
// the answer as the Dashboard does: 200, JSON, {"challenge": HashChallenge(token, challenge)}.
func (s *Simulator) Verify(ctx context.Context, url string, e Event) error {
	if e.challenge == "" {
		return errors.New("verify webhook: not a verify event")
	}
	a, header, body := s.attempt(ctx, url, e)
	switch {
	case a.Err != nil:
		return fmt.Errorf("verify webhook: %w", a.Err)
	case a.Status != http.StatusOK:
		return fmt.Errorf("verify webhook: status %d", a.Status)
	}
	if mt, _, err := mime.ParseMediaType(header.Get("Content-Type")); err != nil || mt != "application/json" {
		return errors.New("verify webhook: answer is not application/json")
	}
	var got struct {
		Challenge string `json:"challenge"`
	}
	if json.Unmarshal(body, &got) != nil || !hmac.Equal([]byte(got.Challenge), []byte(HashChallenge(s.opts.ManagementToken, e.challenge))) {
		return errors.New("verify webhook: the verification request responded with an invalid hash")
	}
	return nil
}

// NewChallenge returns a random VERIFY challenge.
func NewChallenge() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// SignedBody renders e as one delivery would and signs it, for tests that post it themselves.
func (s *Simulator) SignedBody(e Event) (body []byte, signature string, err error) {
	body, err = e.Encode(s.deliveryMeta())
	if err != nil {
		return nil, "", err
	}
	return body, Sign(s.opts.ManagementToken, body), nil
}

func (s *Simulator) deliveryMeta() DeliveryMeta {
	o := s.opts.Webhook
	return DeliveryMeta{WebhookID: o.ID, WebhookName: o.Name, DeliveryID: newUUID(), DeliveredAt: s.now()}
}

// attempt makes one POST and returns its result with the answer's headers and (bounded) body.
func (s *Simulator) attempt(ctx context.Context, url string, e Event) (Attempt, http.Header, []byte) {
	s.webhookAttempts.Add(1)
	o := s.opts.Webhook
	m := s.deliveryMeta()
	a := Attempt{DeliveryID: m.DeliveryID}
	body, err := e.Encode(m)
	if err != nil {
		a.Err = err
		return a, nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, o.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		a.Err = fmt.Errorf("build delivery: %w", err)
		return a, nil, nil
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", webhookUserAgent)
	if !(e.challenge != "" && o.UnsignedVerify) {
		req.Header.Set("SC-Signature", Sign(s.opts.ManagementToken, body))
	}
	resp, err := o.Client.Do(req)
	if err != nil {
		a.Err = err
		return a, nil, nil
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxSimBody))
	a.Status = resp.StatusCode
	return a, resp.Header, raw
}

// sleepCtx waits d; it reports false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
