package registry

import (
	"context"

	"github.com/gatehouse-iot/gatehouse"
)

// ExportPageSize is how many devices an export reads per query.
const ExportPageSize = 1000

// ExportDevices calls fn with every device of scope that q selects (its
// Cursor and Limit are ignored), a page at a time in ID order, so that an
// export of any size streams in bounded memory. Each page is one consistent
// read; devices written while the export runs may or may not appear.
func (s *Service) ExportDevices(ctx context.Context, p *gatehouse.Principal, scope string, q DeviceQuery, fn func([]*gatehouse.Device) error) error {
	if err := p.Authorize(scope, gatehouse.RoleViewer); err != nil {
		return err
	}
	q.Cursor, q.Limit = "", ExportPageSize
	// ListDevices checks the filter and the scope once, on the first page.
	page, err := s.ListDevices(ctx, p, scope, q)
	if err != nil {
		return err
	}
	for {
		if len(page.Items) > 0 {
			if err := fn(page.Items); err != nil {
				return err
			}
		}
		if page.NextCursor == "" {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		after := page.Items[len(page.Items)-1].ID
		items, err := s.store.ListDevices(ctx, q.filter(scope, after, ExportPageSize+1))
		if err != nil {
			return err
		}
		page = &DevicePage{Items: items}
		if len(items) > ExportPageSize {
			page.Items, page.NextCursor = items[:ExportPageSize], "more"
		}
	}
}
