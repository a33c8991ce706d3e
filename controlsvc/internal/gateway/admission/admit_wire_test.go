package admission

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/poolgate/poolgate/plugin/wire"
)

// Request and failure decode the plugin's wire.AdmitRequest and wire.FailedAttempt
// with controlsvc's own additions (the platform after authentication, max_wait_ms absent vs
// 0, the attempt's model and dial streak), so they are not aliases; this test holds their
// JSON fields to the wire's, so that a field added on one side is added on the other.
func TestAdmitRequestMatchesWire(t *testing.T) {
	tests := []struct {
		name       string
		wire, ours interface{}
	}{
		{"admit request", wire.AdmitRequest{}, Request{}},
		{"failed attempt", wire.FailedAttempt{}, failure{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, o := jsonFields(reflect.TypeOf(tc.wire)), jsonFields(reflect.TypeOf(tc.ours))
			if strings.Join(w, ",") != strings.Join(o, ",") {
				t.Errorf("JSON fields differ:\n wire %v\n ours %v", w, o)
			}
		})
	}
}

// jsonFields lists the JSON names of t's encoded fields, sorted.
func jsonFields(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
