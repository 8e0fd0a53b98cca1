package gatehouse

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MergePatch applies an RFC 7386 JSON merge patch to target and returns the
// result. target may be empty (treated as null). Numbers keep their original
// text, so a patch never changes the precision of values it does not touch.
func MergePatch(target, patch json.RawMessage) (json.RawMessage, error) {
	p, err := decodeJSONValue(patch)
	if err != nil {
		return nil, Errorf(EInvalidJSON, "merge patch is not valid JSON: %v", err)
	}
	var t any
	if len(bytes.TrimSpace(target)) > 0 {
		if t, err = decodeJSONValue(target); err != nil {
			return nil, fmt.Errorf("merge patch: stored target: %w", err)
		}
	}
	out, err := json.Marshal(mergeValue(t, p))
	if err != nil {
		return nil, fmt.Errorf("merge patch: encode: %w", err)
	}
	return out, nil
}

func mergeValue(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
			continue
		}
		tm[k] = mergeValue(tm[k], v)
	}
	return tm
}

func decodeJSONValue(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

// DevicePatch is a merge patch of a device's operator-controlled fields.
type DevicePatch struct {
	Tags   json.RawMessage `json:"tags"`
	Config json.RawMessage `json:"config"`
}

// ParseDevicePatch decodes a device merge patch, refusing unknown members
// (state has its own endpoint; id, scope and timestamps are not writable).
func ParseDevicePatch(body []byte) (*DevicePatch, error) {
	var p DevicePatch
	if err := DecodeStrict(body, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Apply merges the patch into d. It validates the result but leaves etag and
// timestamps to the caller.
func (p *DevicePatch) Apply(d *Device) error {
	if len(p.Tags) > 0 {
		cur, _ := json.Marshal(d.Tags)
		if bytes.Equal(bytes.TrimSpace(p.Tags), []byte("null")) {
			d.Tags = map[string]string{}
		} else {
			merged, err := MergePatch(cur, p.Tags)
			if err != nil {
				return err
			}
			var tags map[string]string
			if err := json.Unmarshal(merged, &tags); err != nil {
				return Errorf(EInvalid, "tags must be an object of string values (null deletes a tag)")
			}
			d.Tags = tags
		}
		if d.Tags == nil {
			d.Tags = map[string]string{}
		}
		if err := ValidateTags(d.Tags); err != nil {
			return err
		}
	}
	if len(p.Config) > 0 {
		if bytes.Equal(bytes.TrimSpace(p.Config), []byte("null")) {
			d.Config = json.RawMessage("{}")
		} else {
			if len(p.Config) > 4*MaxConfigBytes {
				return Errorf(ETooLarge, "config patch takes %d bytes; the limit is %d", len(p.Config), MaxConfigBytes)
			}
			merged, err := MergePatch(d.Config, p.Config)
			if err != nil {
				return err
			}
			if err := ValidateJSONObject("config", merged, MaxConfigBytes); err != nil {
				return err
			}
			d.Config = merged
		}
	}
	return nil
}

// DecodeStrict decodes one JSON value into v, refusing unknown fields and
// trailing data, and turns decoder errors into specific, user-safe codes.
func DecodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return Errorf(EInvalidJSON, "request body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Errorf(EInvalidJSON, "request body has data after the JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return Errorf(EInvalidJSON, "malformed JSON at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return Errorf(EInvalidJSON, "the body must be a JSON object, not %s", typ.Value)
		}
		return Errorf(EInvalidJSON, "field %q must be %s, not %s", field, jsonTypeName(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return Errorf(EInvalidJSON, "malformed JSON: the body ends early")
	}
	msg := err.Error()
	if f, ok := bytes.CutPrefix([]byte(msg), []byte("json: unknown field ")); ok {
		return Errorf(EUnknownField, "unknown field %s; remove it (field names are case-sensitive)", f)
	}
	return Errorf(EInvalidJSON, "malformed JSON: %s", truncate(msg, 200))
}

func jsonTypeName(kind string) string {
	switch kind {
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	}
	return "a " + kind
}
