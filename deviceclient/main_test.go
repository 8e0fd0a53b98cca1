package deviceclient_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/gatehouse-iot/gatehouse/deviceclient"
)

// TestMain keeps the identities of clients without a Store (the default
// FileStore) in a directory of this run's, not in the user's.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "deviceclient-state-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv(deviceclient.StateDirEnv, dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
