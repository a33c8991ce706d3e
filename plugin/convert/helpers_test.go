package convert

// Copies of the core's test constants the conversion tests use.
const (
	// fuzzMaxInput bounds a fuzz input (plugin/validate_fuzz_test.go).
	fuzzMaxInput = 1 << 20
	// copyBufferSize is the core relay's read size (plugin/stream.go): upstream reads are
	// at most this long.
	copyBufferSize = 32 << 10
	testClientKey  = "sk-pg-0123456789abcdef0123456789abcdef0123456789abcdef"
)
