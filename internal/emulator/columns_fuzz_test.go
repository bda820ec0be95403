package emulator

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
)

// FuzzParseBooleanColumn: a column definition from a client never panics the
// emulator, and one it accepts has everything dCreateAttr reads from it.
func FuzzParseBooleanColumn(f *testing.F) {
	good, _ := json.Marshal(booleanColumn("new_Fuzz", "Fuzz"))
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"@odata.type":"Microsoft.Dynamics.CRM.BooleanAttributeMetadata","RequiredLevel":{"Value":"x"}}`))
	f.Add([]byte(`{"DisplayName":{"LocalizedLabels":[null,{"Label":null}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		in, problem := parseBooleanColumn(b)
		if problem != nil {
			if _, known := jsonFields(reflect.TypeOf(in))[problem.prop]; problem.kind == problemProperty && known {
				t.Fatalf("a property of the type refused as unknown: %+v", problem)
			}
			return
		}
		if in.SchemaName == nil || !schemaNameRE.MatchString(*in.SchemaName) {
			t.Fatalf("accepted without a valid SchemaName: %s", b)
		}
		if in.RequiredLevel == nil || in.RequiredLevel.Value == nil || !slices.Contains(creatableLevels, *in.RequiredLevel.Value) {
			t.Fatalf("accepted without a valid RequiredLevel: %s", b)
		}
		if in.DisplayName == nil || len(in.DisplayName.LocalizedLabels) == 0 || in.DisplayName.LocalizedLabels[0].Label == nil {
			t.Fatalf("accepted without a DisplayName label: %s", b)
		}
		if in.OptionSet == nil || in.OptionSet.TrueOption == nil || in.OptionSet.FalseOption == nil {
			t.Fatalf("accepted without both options: %s", b)
		}
	})
}
