package postgres

// Internals the external tests (package postgres_test) look at.
var (
	ListDevicesQuery = listDevicesQuery
	MapErr           = mapErr
	MigrateLockKey   = migrateLockKey
	LatestVersion    = latestVersion
)

var ListCredentialsQuery = listCredentialsQuery
var ListEnrollmentsQuery = listEnrollmentsQuery

var (
	EventQuery         = eventQuery
	CountQuery         = countQuery
	ExpiringCountQuery = expiringCountQuery
)

var AnalyzeCheckEvery = analyzeCheckEvery
