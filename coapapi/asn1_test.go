package coapapi_test

import "encoding/asn1"

type (
	asn1ObjectIdentifier = asn1.ObjectIdentifier
	asn1RawValue         = asn1.RawValue
)

var asn1Unmarshal = asn1.Unmarshal
