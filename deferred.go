package gatehouse

// Deferrer is an optional capability of a Tx, used through Deferred: a
// backend that pays a network round trip per statement (PostgreSQL) queues
// some writes and sends them together with a later statement.
type Deferrer interface {
	// Deferred returns the view Deferred describes.
	Deferred(onErr func(error) error) Tx
}

// Deferred returns a view of tx whose deferrable writes (CreateDevice,
// UpdateDevice, AddStateChange, CreateCredential, UpdateCredential,
// PutRegistration, CountEnrollmentUse) the backend may queue instead of
// running them at once, and send in front of the transaction's next
// statement, or with its commit, in one round trip. Everything else on the
// view is tx itself, and reads through either see the queued writes.
//
// A queued write returns nil. If it then fails, its error (the one the
// method would have returned, passed through onErr, which may be nil) is
// returned by the call that sent it, by every later call on tx, and by
// Store.Update, and the transaction commits nothing. So a deferrable write
// made through the view must be one whose error fn would return as it is
// (after onErr): its error may arrive late. A backend that does not queue
// runs the write at once and returns onErr of its error.
func Deferred(tx Tx, onErr func(error) error) Tx {
	if onErr == nil {
		onErr = func(err error) error { return err }
	}
	if d, ok := tx.(Deferrer); ok {
		return d.Deferred(onErr)
	}
	return immediate{Tx: tx, onErr: onErr}
}

// immediate is Deferred's view of a backend that does not queue: each write
// runs at once and its error goes through onErr.
type immediate struct {
	Tx
	onErr func(error) error
}

func (v immediate) mapped(err error) error {
	if err == nil {
		return nil
	}
	return v.onErr(err)
}

func (v immediate) CreateDevice(d *Device) error { return v.mapped(v.Tx.CreateDevice(d)) }
func (v immediate) UpdateDevice(d *Device, prevETag string) error {
	return v.mapped(v.Tx.UpdateDevice(d, prevETag))
}
func (v immediate) AddStateChange(scope, id string, c *StateChange) error {
	return v.mapped(v.Tx.AddStateChange(scope, id, c))
}
func (v immediate) CreateCredential(c *Credential) error { return v.mapped(v.Tx.CreateCredential(c)) }
func (v immediate) UpdateCredential(c *Credential) error { return v.mapped(v.Tx.UpdateCredential(c)) }
func (v immediate) PutRegistration(r *Registration) error {
	return v.mapped(v.Tx.PutRegistration(r))
}
func (v immediate) CountEnrollmentUse(u EnrollmentUse) error {
	return v.mapped(v.Tx.CountEnrollmentUse(u))
}
