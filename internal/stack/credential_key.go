package stack

import "os"

// DevCredentialKey encrypts the account credentials of test stacks and `make run` unless
// POOLGATE_CREDENTIAL_KEY is set: base64 of "poolgate-dev-credential-key-0001". It is
// published here, so it protects nothing: throwaway data only.
const DevCredentialKey = "cG9vbGdhdGUtZGV2LWNyZWRlbnRpYWwta2V5LTAwMDE="

// credentialKey is the POOLGATE_CREDENTIAL_KEY every controlsvc of the stack gets; a stack on
// a kept database (POOLGATE_DATABASE_URL) must be started with the same one each time.
func credentialKey() string {
	if k := os.Getenv("POOLGATE_CREDENTIAL_KEY"); k != "" {
		return k
	}
	return DevCredentialKey
}
