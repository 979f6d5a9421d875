// Package ports declares the outbound interfaces the use cases need, in domain terms and named as
// roles. Adapters implement them; the in-memory fakes in adapters/memory implement every one, and
// the suites in test/contract prove that fakes and real adapters honour the same sentences.
package ports
