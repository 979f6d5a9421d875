// Package memory holds in-memory fakes of every port for the core's tests and for wiring tests
// that need no I/O. The contract suites in test/contract run against them and against the real
// adapters, which is what lets a test trust a fake.
package memory
