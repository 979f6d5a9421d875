package connectapi

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/betterkey/backend/app/sessionkeys"
	"github.com/betterkey/backend/domain"
	adminv1 "github.com/betterkey/backend/gen/betterkey/admin/v1"
)

var errSessionKeysNotWired = &domain.Error{Kind: domain.KindFailedPrecondition, Code: "NOT_CONFIGURED",
	Msg: "session signing key rotation is not available on this server"}

// WithSessionKeys returns s with the use cases behind RotateSessionSigningKey and
// ListSessionSigningKeys; without them those calls fail with FAILED_PRECONDITION.
func (s *AdminServer) WithSessionKeys(k *sessionkeys.Service) *AdminServer {
	c := *s
	c.sessionKeys = k
	return &c
}

// RotateSessionSigningKey implements adminv1connect.AdminServiceHandler.
func (s *AdminServer) RotateSessionSigningKey(ctx context.Context, req *adminv1.RotateSessionSigningKeyRequest) (*adminv1.RotateSessionSigningKeyResponse, error) {
	if s.sessionKeys == nil {
		return nil, errSessionKeysNotWired
	}
	overlap := s.sessionKeys.DefaultOverlap()
	if req.OverlapSeconds != nil {
		sec := req.GetOverlapSeconds()
		if sec < 0 || sec > int64(domain.MaxSigningKeyOverlap/time.Second) {
			return nil, domain.Invalid("overlap_seconds", "must be between 0 and 3600")
		}
		overlap = time.Duration(sec) * time.Second
	}
	id, keys, err := s.sessionKeys.Rotate(ctx, overlap)
	if err != nil {
		return nil, err
	}
	return &adminv1.RotateSessionSigningKeyResponse{KeyId: id, Keys: signingKeyMessages(keys)}, nil
}

// ListSessionSigningKeys implements adminv1connect.AdminServiceHandler.
func (s *AdminServer) ListSessionSigningKeys(ctx context.Context, _ *adminv1.ListSessionSigningKeysRequest) (*adminv1.ListSessionSigningKeysResponse, error) {
	if s.sessionKeys == nil {
		return nil, errSessionKeysNotWired
	}
	keys, err := s.sessionKeys.Keys(ctx)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListSessionSigningKeysResponse{Keys: signingKeyMessages(keys)}, nil
}

func signingKeyMessages(keys []sessionkeys.Key) []*adminv1.SessionSigningKey {
	out := make([]*adminv1.SessionSigningKey, len(keys))
	for i, k := range keys {
		m := &adminv1.SessionSigningKey{KeyId: k.ID, State: string(k.State),
			SignsFrom: timestamppb.New(k.SignsFrom), CreatedAt: timestamppb.New(k.CreatedAt)}
		if !k.VerifiesUntil.IsZero() {
			m.VerifiesUntil = timestamppb.New(k.VerifiesUntil)
		}
		out[i] = m
	}
	return out
}
