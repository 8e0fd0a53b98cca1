package gatehouse

import "testing"

func TestCursorRoundTrip(t *testing.T) {
	for _, id := range []string{"a", "dev-1", "x:y.z_1"} {
		got, err := DecodeCursor(EncodeCursor(id))
		if err != nil || got != id {
			t.Errorf("round trip %q: got %q, %v", id, got, err)
		}
	}
	if got, err := DecodeCursor(""); got != "" || err != nil {
		t.Errorf("empty cursor: got %q, %v", got, err)
	}
	for _, bad := range []string{"!!!", "djE6", "eHl6", EncodeCursor("a")[:3] + "$"} {
		if _, err := DecodeCursor(bad); ErrorCode(err) != EInvalidCursor {
			t.Errorf("DecodeCursor(%q) = %v, want %s", bad, err, EInvalidCursor)
		}
	}
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(EncodeCursor("dev-1"))
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, c string) {
		id, err := DecodeCursor(c)
		if err != nil {
			if ErrorCode(err) != EInvalidCursor {
				t.Fatalf("code %q", ErrorCode(err))
			}
			return
		}
		if id != "" && ValidateDeviceID(id) != nil {
			t.Fatalf("decoded invalid id %q", id)
		}
	})
}
