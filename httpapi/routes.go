package httpapi

import "net/http"

// route is one operation of the API. The table below is the whole API: the
// mux is built from it, and a test holds openapi.json to it.
type route struct {
	method string
	path   string // a net/http pattern path; {name} segments as in OpenAPI
	auth   bool   // needs a bearer token
	fn     func(*Handler, http.ResponseWriter, *http.Request) error
}

var routes = []route{
	{"GET", "/healthz", false, (*Handler).healthz},
	{"GET", "/readyz", false, (*Handler).readyz},
	{"GET", "/v1/openapi.json", false, (*Handler).openAPI},

	{"POST", "/v1/scopes", true, (*Handler).createScope},
	{"GET", "/v1/scopes", true, (*Handler).listScopes},
	{"GET", "/v1/scopes/{scope}", true, (*Handler).getScope},
	{"PUT", "/v1/scopes/{scope}/policy", true, (*Handler).setScopePolicy},

	{"POST", "/v1/scopes/{scope}/tokens", true, (*Handler).createToken},
	{"GET", "/v1/scopes/{scope}/tokens", true, (*Handler).listTokens},
	{"DELETE", "/v1/scopes/{scope}/tokens/{id}", true, (*Handler).revokeToken},

	{"POST", "/v1/scopes/{scope}/devices", true, (*Handler).createDevice},
	{"GET", "/v1/scopes/{scope}/devices", true, (*Handler).listDevices},
	{"GET", "/v1/scopes/{scope}/device-counts", true, (*Handler).deviceCounts},
	{"POST", "/v1/scopes/{scope}/imports", true, (*Handler).importDevices},
	{"POST", "/v1/scopes/{scope}/import-jobs", true, (*Handler).createImportJob},
	{"GET", "/v1/scopes/{scope}/import-jobs", true, (*Handler).listImportJobs},
	{"GET", "/v1/scopes/{scope}/import-jobs/{id}", true, (*Handler).getImportJob},
	{"DELETE", "/v1/scopes/{scope}/import-jobs/{id}", true, (*Handler).cancelImportJob},
	{"GET", "/v1/scopes/{scope}/import-jobs/{id}/results", true, (*Handler).importJobResults},
	{"GET", "/v1/scopes/{scope}/exports/devices", true, (*Handler).exportDevices},
	{"GET", "/v1/scopes/{scope}/exports/enrollments", true, (*Handler).exportEnrollments},
	{"GET", "/v1/scopes/{scope}/devices/{id}", true, (*Handler).getDevice},
	{"PATCH", "/v1/scopes/{scope}/devices/{id}", true, (*Handler).patchDevice},
	{"DELETE", "/v1/scopes/{scope}/devices/{id}", true, (*Handler).deleteDevice},
	{"POST", "/v1/scopes/{scope}/devices/{id}/state", true, (*Handler).setState},
	{"GET", "/v1/scopes/{scope}/devices/{id}/history", true, (*Handler).deviceHistory},
	{"POST", "/v1/scopes/{scope}/devices/{id}/certificates", true, (*Handler).issueCertificate},
	{"GET", "/v1/scopes/{scope}/devices/{id}/credentials", true, (*Handler).deviceCredentials},
	{"POST", "/v1/scopes/{scope}/devices/{id}/credentials/{credentialId}/revoke", true, (*Handler).revokeCredential},

	{"GET", "/v1/scopes/{scope}/ca", true, (*Handler).getCA},
	{"PUT", "/v1/scopes/{scope}/ca", true, (*Handler).importCA},
	{"GET", "/v1/scopes/{scope}/credentials", true, (*Handler).listCredentials},
	{"POST", "/v1/scopes/{scope}/certificates/{serial}/revoke", true, (*Handler).revokeCertificate},

	// Revocation status is public: brokers and devices fetch it without a
	// token, as RFC 5280 and RFC 6960 expect.
	{"GET", "/v1/scopes/{scope}/crl", false, (*Handler).crl},
	{"POST", "/v1/scopes/{scope}/ocsp", false, (*Handler).ocspPost},
	{"GET", "/v1/scopes/{scope}/ocsp/{request}", false, (*Handler).ocspGet},

	{"POST", "/v1/scopes/{scope}/enrollments", true, (*Handler).createEnrollment},
	{"GET", "/v1/scopes/{scope}/enrollments", true, (*Handler).listEnrollments},
	{"GET", "/v1/scopes/{scope}/enrollments/{id}", true, (*Handler).getEnrollment},
	{"PATCH", "/v1/scopes/{scope}/enrollments/{id}", true, (*Handler).patchEnrollment},
	{"DELETE", "/v1/scopes/{scope}/enrollments/{id}", true, (*Handler).deleteEnrollment},
	{"POST", "/v1/scopes/{scope}/enrollments/{id}/verification-code", true, (*Handler).newVerificationCode},
	{"POST", "/v1/scopes/{scope}/enrollments/{id}/verify", true, (*Handler).verifyCA},
	{"GET", "/v1/scopes/{scope}/registrations/{registrationId}", true, (*Handler).getRegistration},

	{"GET", "/v1/scopes/{scope}/events", true, (*Handler).events},

	{"POST", "/v1/scopes/{scope}/webhooks", true, (*Handler).createWebhook},
	{"GET", "/v1/scopes/{scope}/webhooks", true, (*Handler).listWebhooks},
	{"GET", "/v1/scopes/{scope}/webhooks/{id}", true, (*Handler).getWebhook},
	{"DELETE", "/v1/scopes/{scope}/webhooks/{id}", true, (*Handler).deleteWebhook},
	{"GET", "/v1/scopes/{scope}/webhooks/{id}/dead-letters", true, (*Handler).webhookDeadLetters},
	{"POST", "/v1/scopes/{scope}/webhooks/{id}/replay", true, (*Handler).replayWebhook},
}
