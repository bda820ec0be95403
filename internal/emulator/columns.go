package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
)

// The Boolean column definition the emulator creates, checked the way Dataverse checks a POST to
// EntityDefinitions(LogicalName='…')/Attributes:
//   - the shape of "Create a boolean column" (create-update-column-definitions-using-web-api):
//     BooleanAttributeMetadata with SchemaName, DisplayName and Description as Label
//     (LocalizedLabels of LocalizedLabel), DefaultValue, RequiredLevel and an OptionSet whose
//     TrueOption/FalseOption carry Value and Label;
//   - RequiredLevel is required when creating a column and its Value is one of None, Recommended
//     or ApplicationRequired (AttributeMetadata.RequiredLevel: "This property is required for the
//     CreateAttributeRequest message … The following values are valid when you create an
//     attribute"; the AttributeRequiredLevel EnumType also has SystemRequired, which is refused
//     here, and no other member);
//   - property names are case-sensitive at every depth and a property the type does not have is
//     refused (web-api-client-errors). The emulator knows the properties of those examples and
//     LogicalName, a subset of the types' properties: it refuses some definitions Dataverse would
//     take, never the reverse.

const crm = "Microsoft.Dynamics.CRM."

type wireLocalizedLabel struct {
	ODataType    string  `json:"@odata.type"`
	Label        *string `json:"Label"`
	LanguageCode *int    `json:"LanguageCode"`
	IsManaged    *bool   `json:"IsManaged"`
}

type wireLabel struct {
	ODataType          string               `json:"@odata.type"`
	LocalizedLabels    []wireLocalizedLabel `json:"LocalizedLabels"`
	UserLocalizedLabel *wireLocalizedLabel  `json:"UserLocalizedLabel"`
}

type wireOption struct {
	Value *int       `json:"Value"`
	Label *wireLabel `json:"Label"`
}

type wireBooleanOptionSet struct {
	ODataType     string      `json:"@odata.type"`
	OptionSetType *string     `json:"OptionSetType"`
	IsGlobal      *bool       `json:"IsGlobal"`
	TrueOption    *wireOption `json:"TrueOption"`
	FalseOption   *wireOption `json:"FalseOption"`
}

type wireRequiredLevel struct {
	Value                      *string `json:"Value"`
	CanBeChanged               *bool   `json:"CanBeChanged"`
	ManagedPropertyLogicalName *string `json:"ManagedPropertyLogicalName"`
}

type wireBooleanAttribute struct {
	ODataType         string  `json:"@odata.type"`
	AttributeType     *string `json:"AttributeType"`
	AttributeTypeName *struct {
		Value *string `json:"Value"`
	} `json:"AttributeTypeName"`
	SchemaName    *string               `json:"SchemaName"`
	LogicalName   *string               `json:"LogicalName"`
	DisplayName   *wireLabel            `json:"DisplayName"`
	Description   *wireLabel            `json:"Description"`
	DefaultValue  *bool                 `json:"DefaultValue"`
	RequiredLevel *wireRequiredLevel    `json:"RequiredLevel"`
	OptionSet     *wireBooleanOptionSet `json:"OptionSet"`
}

// The OData type of the object a property holds, to name it in an error.
var columnPropertyTypes = map[string]string{
	"DisplayName": "Label", "Description": "Label", "Label": "Label",
	"LocalizedLabels": "LocalizedLabel", "UserLocalizedLabel": "LocalizedLabel",
	"RequiredLevel": "AttributeRequiredLevelManagedProperty", "AttributeTypeName": "AttributeTypeDisplayName",
	"OptionSet": "BooleanOptionSetMetadata", "TrueOption": "OptionMetadata", "FalseOption": "OptionMetadata",
}

// Members of the enum types a Boolean column definition uses.
var (
	requiredLevels  = []string{"None", "SystemRequired", "ApplicationRequired", "Recommended"} // AttributeRequiredLevel EnumType
	creatableLevels = []string{"None", "Recommended", "ApplicationRequired"}
	optionSetTypes  = []string{"Picklist", "State", "Status", "Boolean", "MultiSelect"} // OptionSetType EnumType
	attributeTypes  = []string{"Boolean", "Customer", "DateTime", "Decimal", "Double", "Integer", "Lookup", "Memo", "Money", "Owner",
		"PartyList", "Picklist", "State", "Status", "String", "Uniqueidentifier", "CalendarRules", "Virtual", "BigInt",
		"ManagedProperty", "EntityName"} // AttributeTypeCode EnumType
)

var schemaNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*_[A-Za-z0-9_]+$`)

// columnProblem is why a definition is refused, in one of Dataverse's answers.
type columnProblem struct {
	kind    int // problemProperty, problemPayload or problemArgument
	prop    string
	message string
}

const (
	problemProperty = iota // a top-level property BooleanAttributeMetadata does not have: "Invalid property … was found in entity"
	problemPayload         // what the OData reader refuses: 0x80048d19
	problemArgument        // read, but not a valid definition: 0x80040203 InvalidArgument
)

func payloadProblem(format string, a ...any) *columnProblem {
	return &columnProblem{kind: problemPayload, message: fmt.Sprintf(format, a...)}
}

func argumentProblem(format string, a ...any) *columnProblem {
	return &columnProblem{kind: problemArgument, message: "Invalid argument: " + fmt.Sprintf(format, a...)}
}

// parseBooleanColumn reads and checks a Boolean column definition.
func parseBooleanColumn(b []byte) (wireBooleanAttribute, *columnProblem) {
	var in wireBooleanAttribute
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil || top == nil {
		return in, payloadProblem("The payload is not a JSON object.")
	}
	if path := unknownName(b, reflect.TypeOf(&in)); path != nil {
		if len(path) == 1 {
			return in, &columnProblem{kind: problemProperty, prop: path[0]}
		}
		owner := columnPropertyTypes[path[len(path)-2]]
		return in, payloadProblem("The property '%s' does not exist on type '%s%s'. Make sure to only use property names that are defined by the type or mark the type as open type.",
			path[len(path)-1], crm, owner)
	}
	if err := json.Unmarshal(b, &in); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return in, payloadProblem("Cannot convert the literal of JSON type '%s' to the expected type of property '%s'.", te.Value, te.Field)
		}
		return in, payloadProblem("The payload is not valid JSON: %v.", err)
	}
	if p := checkBooleanColumn(in); p != nil {
		return in, p
	}
	return in, nil
}

func checkBooleanColumn(in wireBooleanAttribute) *columnProblem {
	// OData reads @odata.type and enum members first: a wrong one is a payload error.
	if t := strings.TrimPrefix(in.ODataType, "#"); t != crm+"BooleanAttributeMetadata" {
		if t == "" {
			return payloadProblem("The '@odata.type' of the column is missing; the emulator creates columns of type '%sBooleanAttributeMetadata'.", crm)
		}
		return argumentProblem("the emulator creates Boolean columns only; '@odata.type' must be '%sBooleanAttributeMetadata', not '%s'.", crm, in.ODataType)
	}
	if p := enumMember("AttributeType", "AttributeTypeCode", in.AttributeType, attributeTypes); p != nil {
		return p
	}
	if in.RequiredLevel != nil {
		if p := enumMember("RequiredLevel.Value", "AttributeRequiredLevel", in.RequiredLevel.Value, requiredLevels); p != nil {
			return p
		}
	}
	if in.OptionSet != nil {
		if p := odataType("OptionSet", in.OptionSet.ODataType, "BooleanOptionSetMetadata"); p != nil {
			return p
		}
		if p := enumMember("OptionSet.OptionSetType", "OptionSetType", in.OptionSet.OptionSetType, optionSetTypes); p != nil {
			return p
		}
	}
	labels := map[string]*wireLabel{"DisplayName": in.DisplayName, "Description": in.Description}
	if in.OptionSet != nil {
		for name, o := range map[string]*wireOption{"TrueOption": in.OptionSet.TrueOption, "FalseOption": in.OptionSet.FalseOption} {
			if o != nil {
				labels["OptionSet."+name+".Label"] = o.Label
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(labels)) {
		if p := checkLabel(name, labels[name]); p != nil {
			return p
		}
	}

	// Then the definition itself.
	switch {
	case in.AttributeType != nil && *in.AttributeType != "Boolean":
		return argumentProblem("AttributeType '%s' does not match the type BooleanAttributeMetadata (Boolean).", *in.AttributeType)
	case in.AttributeTypeName != nil && (in.AttributeTypeName.Value == nil || *in.AttributeTypeName.Value != "BooleanType"):
		return argumentProblem("AttributeTypeName.Value must be 'BooleanType' for a Boolean column.")
	case in.SchemaName == nil || *in.SchemaName == "":
		return argumentProblem("SchemaName is required.")
	case !schemaNameRE.MatchString(*in.SchemaName):
		return argumentProblem("SchemaName '%s' must start with a customization prefix followed by '_' (e.g. new_SyncToMkto).", *in.SchemaName)
	case in.LogicalName != nil && *in.LogicalName != strings.ToLower(*in.SchemaName):
		return argumentProblem("LogicalName '%s' must be the SchemaName in lower case ('%s').", *in.LogicalName, strings.ToLower(*in.SchemaName))
	case in.DisplayName == nil:
		return argumentProblem("DisplayName is required.")
	case in.RequiredLevel == nil || in.RequiredLevel.Value == nil:
		return argumentProblem("RequiredLevel is required when creating a column (Value None, Recommended or ApplicationRequired).")
	case !slices.Contains(creatableLevels, *in.RequiredLevel.Value):
		return argumentProblem("RequiredLevel '%s' cannot be set when creating a column; use None, Recommended or ApplicationRequired.", *in.RequiredLevel.Value)
	case in.OptionSet == nil || in.OptionSet.TrueOption == nil || in.OptionSet.FalseOption == nil:
		return argumentProblem("a Boolean column needs an OptionSet with TrueOption and FalseOption.")
	case in.OptionSet.OptionSetType != nil && *in.OptionSet.OptionSetType != "Boolean":
		return argumentProblem("OptionSet.OptionSetType must be 'Boolean' for a Boolean column, not '%s'.", *in.OptionSet.OptionSetType)
	case in.OptionSet.TrueOption.Value != nil && *in.OptionSet.TrueOption.Value != 1,
		in.OptionSet.FalseOption.Value != nil && *in.OptionSet.FalseOption.Value != 0:
		return argumentProblem("the options of a Boolean column have the values 1 (TrueOption) and 0 (FalseOption).")
	}
	return nil
}

// enumMember checks an enum value the OData reader converts: only a member's name, in its case.
func enumMember(prop, enum string, v *string, members []string) *columnProblem {
	if v == nil || slices.Contains(members, *v) {
		return nil
	}
	return payloadProblem("Cannot convert the literal '%s' to the expected type '%s%s' of property '%s'.", *v, crm, enum, prop)
}

// odataType checks an @odata.type annotation of a nested object.
func odataType(prop, got, want string) *columnProblem {
	if got == "" || strings.TrimPrefix(got, "#") == crm+want {
		return nil
	}
	return payloadProblem("A resource with type '%s' was found in property '%s', but it is not assignable to the expected type '%s%s'.", got, prop, crm, want)
}

// checkLabel checks a Label: at least one LocalizedLabel, each with a text and a language code.
func checkLabel(prop string, l *wireLabel) *columnProblem {
	if l == nil {
		return nil
	}
	if p := odataType(prop, l.ODataType, "Label"); p != nil {
		return p
	}
	all := slices.Clone(l.LocalizedLabels)
	if l.UserLocalizedLabel != nil {
		all = append(all, *l.UserLocalizedLabel)
	}
	for _, ll := range all {
		if p := odataType(prop+".LocalizedLabels", ll.ODataType, "LocalizedLabel"); p != nil {
			return p
		}
		if ll.Label == nil || strings.TrimSpace(*ll.Label) == "" || ll.LanguageCode == nil || *ll.LanguageCode <= 0 {
			return argumentProblem("%s: every LocalizedLabel needs a Label and a LanguageCode (e.g. 1033).", prop)
		}
	}
	if len(l.LocalizedLabels) == 0 {
		return argumentProblem("%s needs at least one LocalizedLabel.", prop)
	}
	return nil
}
