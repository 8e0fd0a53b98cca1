package gatehouse

import (
	"strings"
	"unicode/utf8"
)

// MQTTPolicy is a scope's MQTT settings.
type MQTTPolicy struct {
	// TopicTemplates are the topic spaces every device of the scope may
	// use (publish and subscribe), besides its configuration and reported
	// topics, which are always its own. Empty: DefaultTopicTemplate.
	TopicTemplates []string `json:"topicTemplates,omitempty"`
}

// Topic template limits.
const (
	DefaultTopicTemplate   = "devices/{deviceId}/#"
	MaxTopicTemplates      = 8
	MaxTopicTemplateLength = 256
	maxTopicTemplateLevels = 16
)

// Placeholders of a topic template. Each fills a whole topic level.
const (
	PlaceholderDeviceID = "{deviceId}"
	PlaceholderScope    = "{scope}"
)

// TopicTemplate is one parsed topic template: a topic filter in which
// {deviceId} and {scope} stand for the device's ID and its scope.
//
//   - Levels are separated by '/'; none may be empty.
//   - {deviceId} and {scope} fill a whole level; {deviceId} must appear,
//     before any wildcard, so that every device's space is its own.
//   - '+' as a whole level matches any one level.
//   - '#' as the whole last level matches one or more levels below (not the
//     level above it: devices/{deviceId}/# does not give devices/{deviceId}).
//   - Literal levels hold no '+', '#', '{', '}', control characters or
//     U+0000; a template does not start with '$' (the broker's own topics)
//     or '~' (reserved inside the broker).
//
// Placeholders cannot inject topic levels or wildcards: device and scope
// IDs hold none of '/', '+', '#' (see ValidateDeviceID, ValidateScopeID).
type TopicTemplate struct {
	src    string
	levels []topicLevel
}

type levelKind uint8

const (
	levelLiteral levelKind = iota
	levelDeviceID
	levelScope
	levelAny  // +
	levelRest // #, last: one or more levels
)

type topicLevel struct {
	kind levelKind
	lit  string
}

// String returns the template as written.
func (t *TopicTemplate) String() string { return t.src }

// ParseTopicTemplate parses and checks one template.
func ParseTopicTemplate(s string) (*TopicTemplate, error) {
	bad := func(format string, args ...any) error {
		return Errorf(EInvalid, "topic template %q: "+format, append([]any{truncate(s, 64)}, args...)...)
	}
	switch {
	case s == "":
		return nil, Errorf(EInvalid, "a topic template must not be empty")
	case len(s) > MaxTopicTemplateLength:
		return nil, bad("longer than %d bytes", MaxTopicTemplateLength)
	case !utf8.ValidString(s):
		return nil, bad("not valid UTF-8")
	case s[0] == '$' || s[0] == '~':
		return nil, bad("must not start with '$' or '~' (reserved for the broker)")
	}
	t := &TopicTemplate{src: s}
	parts := strings.Split(s, "/")
	if len(parts) > maxTopicTemplateLevels {
		return nil, bad("more than %d levels", maxTopicTemplateLevels)
	}
	sawDevice, sawWildcard := false, false
	for i, p := range parts {
		var l topicLevel
		switch p {
		case "":
			return nil, bad("level %d is empty", i+1)
		case PlaceholderDeviceID:
			if sawWildcard {
				return nil, bad("{deviceId} must come before any wildcard")
			}
			l.kind, sawDevice = levelDeviceID, true
		case PlaceholderScope:
			l.kind = levelScope
		case "+":
			l.kind, sawWildcard = levelAny, true
		case "#":
			if i != len(parts)-1 {
				return nil, bad("'#' may only be the last level")
			}
			if i == 0 {
				return nil, bad("'#' needs a level above it")
			}
			l.kind, sawWildcard = levelRest, true
		default:
			for _, r := range p {
				switch {
				case r == '+' || r == '#':
					return nil, bad("a wildcard must be a whole level (level %d)", i+1)
				case r == '{' || r == '}':
					return nil, bad("unknown placeholder in level %d; use {deviceId} or {scope} as a whole level", i+1)
				case r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0:
					return nil, bad("control character in level %d", i+1)
				}
			}
			l.kind, l.lit = levelLiteral, p
		}
		t.levels = append(t.levels, l)
	}
	if !sawDevice {
		return nil, bad("must contain {deviceId} as a level, so that each device has a space of its own")
	}
	return t, nil
}

// TopicPolicy is a scope's device topic spaces, parsed.
type TopicPolicy struct {
	templates []*TopicTemplate
}

// builtinTemplate is where the configuration and reported topics live
// (devices/{deviceId}/config, devices/{deviceId}/reported): every
// template set is checked against it for overlaps.
var builtinTemplate = mustTemplate("devices/{deviceId}/#")

// DefaultTopicPolicy is the policy of a scope with no templates.
var DefaultTopicPolicy = &TopicPolicy{templates: []*TopicTemplate{builtinTemplate}}

func mustTemplate(s string) *TopicTemplate {
	t, err := ParseTopicTemplate(s)
	if err != nil {
		panic(err)
	}
	return t
}

// ParseTopicPolicy parses a scope's templates (none: the default) and
// checks that no two of them, nor one of them and the built-in
// devices/{deviceId}/ topics, can give two devices the same topic.
func ParseTopicPolicy(templates []string) (*TopicPolicy, error) {
	if len(templates) == 0 {
		return DefaultTopicPolicy, nil
	}
	if len(templates) > MaxTopicTemplates {
		return nil, Errorf(EInvalid, "at most %d topic templates per scope", MaxTopicTemplates)
	}
	p := &TopicPolicy{}
	for _, s := range templates {
		t, err := ParseTopicTemplate(s)
		if err != nil {
			return nil, err
		}
		for _, o := range append([]*TopicTemplate{builtinTemplate}, p.templates...) {
			if t.src == o.src && o != builtinTemplate {
				return nil, Errorf(EInvalid, "topic template %q is listed twice", truncate(s, 64))
			}
			if !separate(t, o) {
				return nil, Errorf(EInvalid, "topic templates %q and %q could give two devices the same topic: put {deviceId} at the same level after the same levels, or start them with different literal levels",
					truncate(s, 64), truncate(o.src, 64))
			}
		}
		p.templates = append(p.templates, t)
	}
	return p, nil
}

// separate reports whether two templates can never give two different
// devices the same topic: the levels before their first {deviceId} are
// the same (so {deviceId} is at the same level: a topic of both names one
// device), or differ at some level in two different literals.
func separate(a, b *TopicTemplate) bool {
	pa, pb := a.prefix(), b.prefix()
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if pa[i].kind == levelLiteral && pb[i].kind == levelLiteral && pa[i].lit != pb[i].lit {
			return true // never the same topic
		}
		if pa[i] != pb[i] {
			return false // a literal against {scope}: equal for some scope
		}
	}
	return len(pa) == len(pb)
}

// prefix is the levels before the first {deviceId}: literals and {scope}.
func (t *TopicTemplate) prefix() []topicLevel {
	for i, l := range t.levels {
		if l.kind == levelDeviceID {
			return t.levels[:i]
		}
	}
	return t.levels
}

// Templates returns the templates as written.
func (p *TopicPolicy) Templates() []string {
	out := make([]string, len(p.templates))
	for i, t := range p.templates {
		out[i] = t.src
	}
	return out
}

// Expand returns the templates as MQTT topic filters for one device (for
// brokers that take filters, such as EMQX ACL rules).
func (p *TopicPolicy) Expand(scope, deviceID string) []string {
	out := make([]string, len(p.templates))
	for i, t := range p.templates {
		var b strings.Builder
		for j, l := range t.levels {
			if j > 0 {
				b.WriteByte('/')
			}
			switch l.kind {
			case levelLiteral:
				b.WriteString(l.lit)
			case levelDeviceID:
				b.WriteString(deviceID)
			case levelScope:
				b.WriteString(scope)
			case levelAny:
				b.WriteByte('+')
			case levelRest:
				b.WriteByte('#')
			}
		}
		out[i] = b.String()
	}
	return out
}

// Allows reports whether a device may use topic: a topic name to publish
// to (filter false), or a filter to subscribe with (filter true), which
// must not reach beyond the device's space. It allocates nothing.
func (p *TopicPolicy) Allows(scope, deviceID, topic string, filter bool) bool {
	if topic == "" || !filter && strings.ContainsAny(topic, "+#") {
		return false
	}
	for _, t := range p.templates {
		if t.allows(scope, deviceID, topic, filter) {
			return true
		}
	}
	return false
}

func (t *TopicTemplate) allows(scope, deviceID, topic string, filter bool) bool {
	rest := topic
	for i, l := range t.levels {
		if l.kind == levelRest {
			// One or more levels below; in a filter anything goes there
			// ('+', or '#' as the last level: MQTT checks its place).
			return rest != ""
		}
		if rest == "" && i > 0 {
			return false // the topic is shorter than the template
		}
		level, next, more := strings.Cut(rest, "/")
		switch l.kind {
		case levelLiteral:
			if level != l.lit {
				return false
			}
		case levelDeviceID:
			if level != deviceID {
				return false
			}
		case levelScope:
			if level != scope {
				return false
			}
		case levelAny:
			if level == "#" {
				return false // '#' would reach past this level
			}
		}
		if i == len(t.levels)-1 {
			return !more // exactly as long as the template
		}
		if !more {
			return false
		}
		rest = next
	}
	return false
}
