// Package server assembles one Gatehouse node: it opens the data directory
// (master key, admin token, installation CA), the database (embedded SQLite
// by default, PostgreSQL when several nodes share one), the registry, and the
// HTTPS front end, and shuts them down in order.
//
// cmd/gatehouse's serve command calls Run; tests call Start on 127.0.0.1:0.
package server
