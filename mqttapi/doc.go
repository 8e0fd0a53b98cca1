// Package mqttapi is Gatehouse's MQTT front end: an embedded broker
// (mochi-mqtt) whose every connection is authenticated against the
// registry, and an HTTP hook that answers the same questions for an
// external broker cluster (EMQX 5 HTTP authentication and authorisation).
//
// A connection is one of three kinds, decided at CONNECT:
//
//   - a device session: the device's operational certificate (mTLS; the
//     certificate's urn:gatehouse URI SAN names scope and device) or a SAS
//     token for {scope}/devices/{deviceId}. The client ID is the device ID.
//     The device may use only devices/{deviceId}/#; it receives its desired
//     configuration retained on devices/{deviceId}/config and reports
//     properties on devices/{deviceId}/reported.
//   - a DPS provisioning session: the Azure DPS MQTT dialect (username
//     {idScope}/registrations/{registrationId}/api-version=..., password a
//     SAS token or an X.509 client certificate); topics $dps/registrations/...
//   - a native provisioning session: username {scope}/{registrationId},
//     password a bootstrap token or a SAS token for
//     {scope}/registrations/{registrationId} (or a factory certificate);
//     CSR in on gatehouse/provision/{rid}/req, certificate out on
//     gatehouse/provision/{rid}/res.
//
// Inside the broker every session's topics live under a prefix of its own
// (its scope for devices; its scope and registration for provisioning), so
// no topic, retained message or client ID is ever shared across scopes,
// and a provisioning answer reaches only the connection that asked.
//
// Live enforcement follows the registry's event log: a revoked certificate,
// a device moved to inactive, quarantined or decommissioned, or a deleted
// device loses its sessions at once; a configuration change is published
// again. See docs/mqtt.md.
package mqttapi
