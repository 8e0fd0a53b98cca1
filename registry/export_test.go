package registry_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

func TestExportDevices(t *testing.T) {
	backends(t, func(t *testing.T, reg *registry.Service, admin *gatehouse.Principal) {
		var b strings.Builder
		b.WriteString("id,tags.site\n")
		n := registry.ExportPageSize + 250
		for i := range n {
			fmt.Fprintf(&b, "e-%05d,s%d\n", i, i%2)
		}
		runImport(t, reg, admin, registry.ImportCreate, registry.ImportCSV, b.String())
		var ids []string
		err := reg.ExportDevices(context.Background(), admin, gatehouse.DefaultScope,
			registry.DeviceQuery{Selectors: []gatehouse.TagSelector{{Key: "site", Op: gatehouse.SelEq, Values: []string{"s1"}}}, Limit: 3, Cursor: "ignored"},
			func(ds []*gatehouse.Device) error {
				for _, d := range ds {
					ids = append(ids, d.ID)
				}
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != n/2 || ids[0] != "e-00001" || ids[len(ids)-1] != fmt.Sprintf("e-%05d", n-1) {
			t.Errorf("export: got %d devices (%v ... %v), want %d", len(ids), ids[0], ids[len(ids)-1], n/2)
		}
		for i := 1; i < len(ids); i++ {
			if ids[i] <= ids[i-1] {
				t.Fatalf("export out of order at %d: %s after %s", i, ids[i], ids[i-1])
			}
		}
	})
}
