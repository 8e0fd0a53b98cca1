// Package registry implements the device registry's use cases on top of a
// gatehouse.Store: scopes, API tokens, devices, their lifecycle and history,
// and the event log. Every method authorises its caller (a
// gatehouse.Principal) against the scope it touches, validates its input, and
// writes the change and the event describing it in one transaction.
//
// Protocol front ends (httpapi, later mqttapi and coapapi) call this package
// and never a store directly.
package registry
