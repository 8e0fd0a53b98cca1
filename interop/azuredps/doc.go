// Package azuredps checks Gatehouse's Azure DPS dialects (HTTPS and MQTT)
// against Microsoft's own Azure IoT DPS device SDK for Node.js, unmodified.
//
// The package has no Go code of its own. Its test boots a real Gatehouse
// node on loopback ports, installs the SDK with npm ci (the versions pinned
// in package-lock.json, into a cache directory outside the tree), and runs
// provision.js, a small ProvisioningDeviceClient program, once per case:
// symmetric keys of individual enrollments and of groups (device keys
// derived as Azure documents it), X.509 chains to a verified group CA and
// individual X.509 enrollments, a custom allocation's payload, re-registration
// and a wrong key, over both transports. It asserts on what the SDK returned
// and on the registry.
//
// Run it alone with
//
//	go test -race -count=1 ./interop/azuredps/
//
// It needs node and npm (Debian packages nodejs and npm; scripts/test
// installs them) and npm's registry. Outside CI it skips when node or npm is
// missing; in CI (CI=true) it fails instead.
package azuredps
