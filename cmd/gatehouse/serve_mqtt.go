package main

import (
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/mqttapi"
)

// mqttLimitFlag is one of mqttapi.Limits as a serve flag. Its environment
// variable is GATEHOUSE_ and the flag's name in capitals.
type mqttLimitFlag struct {
	name  string
	usage string
	def   func(mqttapi.Limits) string
	set   func(*mqttapi.Limits, string) error
}

func envOf(flag string) string {
	return "GATEHOUSE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

var mqttLimitFlags = []mqttLimitFlag{
	{"mqtt-max-packet-size", "largest MQTT packet a client may send, in bytes; larger ones end the session (MQTT 5: DISCONNECT 0x95)",
		func(l mqttapi.Limits) string { return strconv.FormatUint(uint64(l.MaxPacketSize), 10) },
		func(l *mqttapi.Limits, v string) error {
			n, err := strconv.ParseUint(v, 10, 32)
			l.MaxPacketSize = uint32(n)
			return err
		}},
	{"mqtt-connects-per-second", "new MQTT connections per second per source address, refused before the TLS handshake beyond it",
		func(l mqttapi.Limits) string { return strconv.FormatFloat(l.ConnectsPerSecond, 'g', -1, 64) },
		func(l *mqttapi.Limits, v string) (err error) {
			l.ConnectsPerSecond, err = strconv.ParseFloat(v, 64)
			return err
		}},
	{"mqtt-connect-burst", "new MQTT connections a source address may open at once",
		func(l mqttapi.Limits) string { return strconv.Itoa(l.ConnectBurst) },
		func(l *mqttapi.Limits, v string) (err error) { l.ConnectBurst, err = strconv.Atoi(v); return err }},
	{"mqtt-connect-timeout", "time a new connection has for its TLS handshake and CONNECT",
		func(l mqttapi.Limits) string { return l.ConnectTimeout.String() },
		func(l *mqttapi.Limits, v string) (err error) {
			l.ConnectTimeout, err = time.ParseDuration(v)
			return err
		}},
	{"mqtt-violation-threshold", "topic refusals after which a session is logged and closed",
		func(l mqttapi.Limits) string { return strconv.Itoa(l.ViolationThreshold) },
		func(l *mqttapi.Limits, v string) (err error) { l.ViolationThreshold, err = strconv.Atoi(v); return err }},
	{"mqtt-session-expiry", "how long a disconnected persistent session is kept (at most)",
		func(l mqttapi.Limits) string { return (time.Duration(l.SessionExpiry) * time.Second).String() },
		func(l *mqttapi.Limits, v string) error {
			d, err := time.ParseDuration(v)
			if err == nil && (d < time.Second || d > 0xFFFFFFFF*time.Second) {
				return gatehouse.Errorf(gatehouse.EInvalid, "between 1s and 136 years")
			}
			l.SessionExpiry = uint32(d / time.Second)
			return err
		}},
	{"mqtt-max-inflight", "QoS 1 and 2 messages in flight per client (MQTT 5 receive maximum)",
		func(l mqttapi.Limits) string { return strconv.Itoa(int(l.MaxInflight)) },
		func(l *mqttapi.Limits, v string) error {
			n, err := strconv.ParseUint(v, 10, 16)
			l.MaxInflight = uint16(n)
			return err
		}},
	{"mqtt-queue", "packets queued for one client before further ones are dropped",
		func(l mqttapi.Limits) string { return strconv.Itoa(int(l.WritesPending)) },
		func(l *mqttapi.Limits, v string) error {
			n, err := strconv.ParseInt(v, 10, 32)
			l.WritesPending = int32(n)
			return err
		}},
	{"mqtt-reports-per-second", "reported-property writes per second per device",
		func(l mqttapi.Limits) string { return strconv.FormatFloat(l.ReportsPerSecond, 'g', -1, 64) },
		func(l *mqttapi.Limits, v string) (err error) {
			l.ReportsPerSecond, err = strconv.ParseFloat(v, 64)
			return err
		}},
	{"mqtt-report-burst", "reported-property writes a device may make at once",
		func(l mqttapi.Limits) string { return strconv.Itoa(l.ReportBurst) },
		func(l *mqttapi.Limits, v string) (err error) { l.ReportBurst, err = strconv.Atoi(v); return err }},
}

// addMQTTLimitFlags adds mqttapi.Limits to serve's flags, with the
// defaults shown.
func addMQTTLimitFlags(f *pflag.FlagSet) {
	def := mqttapi.DefaultLimits()
	for _, m := range mqttLimitFlags {
		f.String(m.name, m.def(def), m.usage+" (env "+envOf(m.name)+")")
	}
}

// mqttLimits reads the limits from the flags or the environment (value
// returns a flag's value, its environment variable's or its default).
func mqttLimits(value func(flag, env string) string) (mqttapi.Limits, error) {
	var l mqttapi.Limits
	for _, m := range mqttLimitFlags {
		v := value(m.name, envOf(m.name))
		if v == "" {
			continue
		}
		if err := m.set(&l, v); err != nil {
			why := "not a valid value"
			if gatehouse.ErrorCode(err) == gatehouse.EInvalid {
				why = gatehouse.ErrorMessage(err)
			}
			return l, usagef("--%s %q: %s", m.name, v, why)
		}
	}
	if err := l.Validate(); err != nil {
		return l, usagef("%s", gatehouse.ErrorMessage(err))
	}
	return l, nil
}
