package mqttapi

import (
	"net/url"
	"strings"

	"github.com/gatehouse-iot/gatehouse"
)

// Topic names a device sees. Every session's topics are mounted under a
// prefix of its own scope inside the broker (see mount), so a device ID
// used in two scopes never shares a topic.
const (
	devicesPrefix = "devices/"
	configSuffix  = "/config"
	reportSuffix  = "/reported"

	dpsResPrefix      = "$dps/registrations/res/"
	dpsResFilter      = "$dps/registrations/res/#"
	dpsRegisterPrefix = "$dps/registrations/PUT/iotdps-register/?"
	dpsPollPrefix     = "$dps/registrations/GET/iotdps-get-operationstatus/?"

	nativePrefix    = "gatehouse/provision/"
	nativeReqSuffix = "/req"
	nativeResSuffix = "/res"
)

// maxRIDLen caps a request ID ($rid, or the native {rid} segment): it is
// echoed into a response topic, so it must stay short and plain.
const maxRIDLen = 64

// ConfigTopic is where a device's desired configuration is delivered
// (retained).
func ConfigTopic(deviceID string) string { return devicesPrefix + deviceID + configSuffix }

// ReportedTopic is where a device reports its properties.
func ReportedTopic(deviceID string) string { return devicesPrefix + deviceID + reportSuffix }

// validRID reports whether a request ID is safe to echo into a topic:
// 1 to maxRIDLen ASCII letters, digits, '-' or '_'. Anything else could
// inject topic levels, wildcards or query members.
func validRID(rid string) bool {
	if rid == "" || len(rid) > maxRIDLen {
		return false
	}
	for i := 0; i < len(rid); i++ {
		c := rid[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// dpsRequestKind is what a device published on a $dps topic.
type dpsRequestKind int

const (
	dpsRegister dpsRequestKind = iota + 1
	dpsPoll
)

// dpsTopic is a parsed DPS request topic.
type dpsTopic struct {
	kind        dpsRequestKind
	rid         string
	operationID string
}

// parseDPSTopic parses a DPS request topic:
//
//	$dps/registrations/PUT/iotdps-register/?$rid={rid}
//	$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={op}
//
// The query members may come in any order; unknown members are ignored.
func parseDPSTopic(topic string) (dpsTopic, bool) {
	var t dpsTopic
	var query string
	switch {
	case strings.HasPrefix(topic, dpsRegisterPrefix):
		t.kind, query = dpsRegister, topic[len(dpsRegisterPrefix):]
	case strings.HasPrefix(topic, dpsPollPrefix):
		t.kind, query = dpsPoll, topic[len(dpsPollPrefix):]
	default:
		return t, false
	}
	if len(query) > 512 {
		return t, false
	}
	q, err := url.ParseQuery(query)
	if err != nil || len(q["$rid"]) != 1 || len(q["operationId"]) > 1 {
		return t, false
	}
	t.rid = q.Get("$rid")
	if !validRID(t.rid) {
		return t, false
	}
	if t.kind == dpsPoll {
		t.operationID = q.Get("operationId")
		if t.operationID == "" || len(t.operationID) > 128 || strings.ContainsAny(t.operationID, "/+#&?") {
			return t, false
		}
	}
	return t, true
}

// dpsResponseTopic is where a DPS answer goes.
func dpsResponseTopic(status int, rid string, retryAfter int) string {
	t := dpsResPrefix + itoa(status) + "/?$rid=" + rid
	if retryAfter > 0 {
		t += "&retry-after=" + itoa(retryAfter)
	}
	return t
}

// parseNativeRequestTopic returns the {rid} of gatehouse/provision/{rid}/req.
func parseNativeRequestTopic(topic string) (string, bool) {
	rest, ok := strings.CutPrefix(topic, nativePrefix)
	if !ok {
		return "", false
	}
	rid, ok := strings.CutSuffix(rest, nativeReqSuffix)
	return rid, ok && validRID(rid)
}

func nativeResponseTopic(rid string) string { return nativePrefix + rid + nativeResSuffix }

// dpsUsername is a parsed DPS MQTT username.
type dpsUsername struct {
	scope, registrationID string
}

// parseDPSUsername parses {idScope}/registrations/{registrationId}/api-version=...
// (SDKs append &ClientVersion=... and more: any suffix is accepted).
func parseDPSUsername(u string) (dpsUsername, bool) {
	scope, rest, ok := strings.Cut(u, "/registrations/")
	if !ok {
		return dpsUsername{}, false
	}
	regID, rest, ok := strings.Cut(rest, "/")
	if !ok || !strings.HasPrefix(rest, "api-version=") {
		return dpsUsername{}, false
	}
	if gatehouse.ValidateScopeID(scope) != nil || gatehouse.ValidateDeviceID(regID) != nil {
		return dpsUsername{}, false
	}
	return dpsUsername{scope: scope, registrationID: regID}, true
}

// parseDeviceUsername parses {scope}/{id} or {scope}/devices/{id} (IoT Hub
// style usernames carry more after the ID: {hub}/{id}/?api-version=...; a
// '/' and anything after it is accepted and ignored).
func parseDeviceUsername(u string) (scope, id string, ok bool) {
	scope, rest, ok := strings.Cut(u, "/")
	if !ok {
		return "", "", false
	}
	if r, found := strings.CutPrefix(rest, "devices/"); found {
		rest = r
	}
	id, _, _ = strings.Cut(rest, "/")
	if gatehouse.ValidateScopeID(scope) != nil || gatehouse.ValidateDeviceID(id) != nil {
		return "", "", false
	}
	return scope, id, true
}

// hasWildcard reports whether a filter holds an MQTT wildcard.
func hasWildcard(filter string) bool { return strings.ContainsAny(filter, "+#") }

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
