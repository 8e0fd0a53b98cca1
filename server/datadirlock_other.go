//go:build !unix

package server

import "os"

// lockDataDir takes no lock where flock is missing: one node per data
// directory is then the operator's to ensure.
func lockDataDir(string) (*os.File, error) { return nil, nil }

func unlockDataDir(*os.File) {}
