package sqlite

import (
	"database/sql"
	"errors"
	"fmt"

	"github.com/gatehouse-iot/gatehouse"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// storeError turns a driver error into a gatehouse error. The user-safe
// message names the thing (what, e.g. `device "d1" in scope "acme"`); the
// driver's error, SQL text and all, is wrapped beside it for the log and
// never becomes part of the message.
//
// missingParent names what a foreign key violation means in this statement
// (the scope of a new device, the device of a history entry).
func storeError(op string, err error, what, missingParent string) error {
	if err == nil {
		return nil
	}
	var code string
	var msg string
	var se *sqlite.Error
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return gatehouse.Errorf(gatehouse.ENotFound, "%s not found", what)
	case errors.As(err, &se):
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			code, msg = gatehouse.EConflict, what+" already exists"
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			if missingParent != "" {
				code, msg = gatehouse.ENotFound, missingParent+" not found"
			} else {
				code, msg = gatehouse.EConflict, what+" is still referenced"
			}
		default:
			switch se.Code() & 0xff {
			case sqlite3.SQLITE_CONSTRAINT:
				code, msg = gatehouse.EConflict, what+" conflicts with stored data"
			case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY:
				code, msg = gatehouse.EUnavailable, "the database is unavailable; retry later"
			}
		}
	}
	if code == "" {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	return fmt.Errorf("sqlite: %s: %w: %w", op, gatehouse.Errorf(code, "%s", msg), err)
}
