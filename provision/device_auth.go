package provision

import (
	"context"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/attest"
)

// errDeviceSAS is the one answer to a failed device SAS: a device (or a
// prober) cannot tell an unknown device from a wrong key by the text.
var errDeviceSAS = gatehouse.Errorf(gatehouse.EUnauthenticated, "authentication failed: send a SAS token for {scope}/devices/{deviceId} signed with the device's key")

// AuthenticateDeviceSAS authenticates a provisioned device by a SAS token
// whose resource is "{scope}/devices/{deviceId}" (the MQTT password of IoT
// Hub style devices). The key is the device's individual enrollment key, or
// the key derived from its group's key and the device ID (so a group's
// devices must have been registered with device ID = registration ID, the
// default template). Both slots (primary, secondary) are tried. Repeated
// failures lock the device ID out as failed attestations do: from source
// (the client's address; "" if unknown) first, everywhere after many more
// (guard.go). A device whose
// state forbids authentication gets EForbidden (the caller reads the
// device's state to say why); anything else that fails is EUnauthenticated.
func (s *Service) AuthenticateDeviceSAS(ctx context.Context, scope, deviceID, sas, source string) (*gatehouse.Device, error) {
	if gatehouse.ValidateScopeID(scope) != nil || gatehouse.ValidateDeviceID(deviceID) != nil {
		return nil, errDeviceSAS
	}
	g := newGuard("device:"+scope+"/"+deviceID, source)
	if locked, after := s.lockedOut(g); locked {
		return nil, rateLimited(after, "locked out after repeated failed authentications")
	}
	d, err := s.authenticateDeviceSAS(ctx, scope, deviceID, sas)
	if err != nil {
		if gatehouse.ErrorCode(err) == gatehouse.EUnauthenticated {
			s.failed(g)
			s.log.Info("device SAS authentication failed", "scope", scope, "device_id", deviceID, "reason", failureReason(err))
			return nil, errDeviceSAS
		}
		return nil, err
	}
	s.succeeded(g)
	return d, nil
}

func (s *Service) authenticateDeviceSAS(ctx context.Context, scope, deviceID, token string) (*gatehouse.Device, error) {
	sas, err := attest.ParseSAS(token)
	if err != nil {
		return nil, unauthenticated(err)
	}
	if err := sas.CheckDeviceResource(scope, deviceID); err != nil {
		return nil, unauthenticated(err)
	}
	d, err := s.store.GetDevice(ctx, scope, deviceID)
	if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
		return nil, errDeviceSAS
	} else if err != nil {
		return nil, err
	}
	if d.Enrollment == "" {
		return nil, errDeviceSAS // created by an operator: it has no symmetric key
	}
	e, err := s.store.GetEnrollment(ctx, scope, d.Enrollment)
	if gatehouse.ErrorCode(err) == gatehouse.ENotFound {
		return nil, errDeviceSAS
	} else if err != nil {
		return nil, err
	}
	if e.Attestation.Type != gatehouse.AttestSymmetricKey {
		return nil, errDeviceSAS
	}
	sec, err := s.enrollmentSecrets(e)
	if err != nil {
		return nil, err
	}
	keys := [][]byte{sec.PrimaryKey, sec.SecondaryKey}
	if e.Type == gatehouse.EnrollmentGroup {
		// A group's device keys are derived from registration IDs; the key
		// derived from this device ID belongs to the device that registered
		// under that ID, which is this one only when device ID =
		// registration ID. With another template a member whose
		// registration ID is "d-x" would hold the key of device "d-x".
		if t := e.DeviceIDTemplate; t != "" && t != "{registrationId}" {
			return nil, &reasonError{reason: "group with a device ID template: SAS login not possible", err: errDeviceSAS}
		}
		keys = [][]byte{attest.DeriveDeviceKey(sec.PrimaryKey, deviceID), attest.DeriveDeviceKey(sec.SecondaryKey, deviceID)}
	}
	if _, err := attest.VerifySASWithKeys(sas, keys, s.now(), s.maxSASLifetime); err != nil {
		return nil, unauthenticated(err)
	}
	if !d.State.CanAuthenticate() {
		return nil, gatehouse.Errorf(gatehouse.EForbidden, "device %q is %s and may not authenticate", deviceID, d.State)
	}
	// An operator may have revoked the device's key on its own.
	if err := s.reg.SymmetricKeyUsable(ctx, d); gatehouse.ErrorCode(err) == gatehouse.EUnauthenticated {
		return nil, &reasonError{reason: "key revoked", err: errDeviceSAS}
	} else if err != nil {
		return nil, err
	}
	return d, nil
}

// unauthenticated keeps an attestation failure's reason for the log while
// its code becomes EUnauthenticated.
func unauthenticated(err error) error {
	return &reasonError{reason: failureReason(err), err: errDeviceSAS}
}

// Attest checks a provisioning request's proof without registering (an
// MQTT provisioning connection is authenticated at CONNECT, before it
// sends its registration). Failures count toward the lockout as in
// Register.
func (s *Service) Attest(ctx context.Context, req Request) error {
	if gatehouse.ValidateScopeID(req.Scope) != nil {
		return errNoEnrollment
	}
	if err := gatehouse.ValidateDeviceID(req.RegistrationID); err != nil {
		return err
	}
	if req.Source != "" {
		if ok, after := s.bySource.Allow("src:" + req.Source); !ok {
			return rateLimited(after, "too many registrations from this address")
		}
	}
	g := newGuard(req.Scope+"/"+req.RegistrationID, req.Source)
	if locked, after := s.lockedOut(g); locked {
		return rateLimited(after, "locked out after repeated failed attestations")
	}
	if _, err := s.attest(ctx, req); err != nil {
		s.attestationFailed(ctx, req, g, err)
		return err
	}
	return nil
}
