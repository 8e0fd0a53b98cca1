package deviceclient_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/deviceclient"
)

// TestDPSPollHonoursRetryAfter: over DPS HTTPS the device waits the
// Retry-After of the register answer and of each "assigning" poll before
// polling again, as DPS asks of devices, instead of its own short backoff.
func TestDPSPollHonoursRetryAfter(t *testing.T) {
	var (
		mu    sync.Mutex
		times []time.Time
	)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		n := len(times)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/registrations/dev-1/register"):
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusAccepted)
			w.Write([]byte(`{"operationId":"op-1","status":"assigning"}`))
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/operations/op-1") && n == 2:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusAccepted)
			w.Write([]byte(`{"operationId":"op-1","status":"assigning","registrationState":{"registrationId":"dev-1","status":"assigning"}}`))
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/operations/op-1"):
			w.Write([]byte(`{"operationId":"op-1","status":"failed","registrationState":{"registrationId":"dev-1","status":"failed","errorCode":401002,"errorMessage":"no"}}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	roots := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	c, err := deviceclient.New(deviceclient.Config{ServerURL: srv.URL, RegistrationID: "dev-1", Protocol: deviceclient.DPS,
		Credentials: deviceclient.Credentials{SymmetricKey: []byte("0123456789abcdef0123456789abcdef")}, RootCAs: roots,
		Retry: deviceclient.Retry{Attempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Provision(context.Background())
	var e *deviceclient.Error
	if !errors.As(err, &e) || e.Code != "401002" {
		t.Fatalf("Provision: got %v, want the operation's failure 401002", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(times) != 3 {
		t.Fatalf("%d requests, want register and two polls", len(times))
	}
	for i := 1; i < 3; i++ {
		if gap := times[i].Sub(times[i-1]); gap < time.Second {
			t.Errorf("request %d came %v after the one before, want at least its Retry-After of 1s", i+1, gap)
		}
	}
}
