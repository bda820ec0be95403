// Package batch reads a file of tenants to onboard (CSV or YAML), checks
// every row before anything starts, and runs the onboardings with a bound
// on how many provision at once. It knows nothing of Temporal: the caller
// hands it the start and poll functions (internal/cli wires them to
// internal/lifecycle), so a second client runs batches by the same rules.
package batch

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mktos2s/mktos2s/workflows"
)

// Columns are the batch file's columns (CSV header or YAML keys): the
// target, then the per-tenant settings of `starter start`. Headers match
// case-insensitively, with or without '-', '_' or spaces ("tenant-id").
var Columns = []Column{
	{"tenantId", "the customer's Directory (tenant) ID, a GUID (required)"},
	{"orgUrl", "the Dynamics 365 org URL, e.g. https://contoso.crm.dynamics.com (required)"},
	{"appName", "display name of the Entra app (default " + strconv.Quote(workflows.DefaultAppDisplayName) + ")"},
	{"secretMonths", fmt.Sprintf("client secret lifetime in months, 1-%d (default %d)", workflows.MaxSecretLifetimeMonths, workflows.DefaultSecretLifetimeMonths)},
	{"consentTimeout", "how long to wait for admin consent, a Go duration such as 72h (default " + workflows.DefaultConsentTimeout.String() + ")"},
	{"federation", "auto, always or never (default auto)"},
	{"syncFilter", "entities that get the custom sync filter column, separated by ';' or ',' (default none)"},
	{"solution", "the Marketo solution's unique or friendly name"},
	{"minSolutionVersion", "the minimum Marketo solution version"},
}

// Column is one column of the batch file.
type Column struct{ Name, Help string }

// Row is one tenant of the file as written: Number counts data rows from 1
// (the CSV header is not a row), Line is where it starts in the file.
type Row struct {
	Number int
	Line   int
	Values map[string]string // canonical column name -> value
}

// Problem is one bad value of a row (Row 0: the file itself).
type Problem struct {
	Row   int    `json:"row"`
	Line  int    `json:"line,omitempty"`
	Field string `json:"field"`
	Value string `json:"value,omitempty"`
	Fix   string `json:"fix"`
}

func (p Problem) String() string {
	where := "file"
	if p.Row > 0 {
		where = fmt.Sprintf("row %d (line %d)", p.Row, p.Line)
	}
	if p.Value != "" {
		return fmt.Sprintf("%s, %s %q: %s", where, p.Field, p.Value, p.Fix)
	}
	return fmt.Sprintf("%s, %s: %s", where, p.Field, p.Fix)
}

// FileError refuses a whole file: nothing was started.
type FileError struct {
	File     string    `json:"file"`
	Rows     int       `json:"rows"`
	Problems []Problem `json:"problems"`
}

func (e *FileError) Error() string {
	bad := map[int]bool{}
	for _, p := range e.Problems {
		bad[p.Row] = true
	}
	var b strings.Builder
	if bad[0] {
		fmt.Fprintf(&b, "batch file %s refused, nothing was started:", e.File)
	} else {
		fmt.Fprintf(&b, "batch file %s refused: %d of %d rows are invalid, nothing was started; fix them and run it again:", e.File, len(bad), e.Rows)
	}
	for _, p := range e.Problems {
		b.WriteString("\n  - " + p.String())
	}
	return b.String()
}

// Entry is a valid row: the onboarding input it stands for.
type Entry struct {
	Row   int                       `json:"row"`
	Line  int                       `json:"line"`
	Input workflows.OnboardingInput `json:"-"`
}

func canonical(header string) (string, bool) {
	norm := strings.NewReplacer("-", "", "_", "", " ", "").Replace(strings.ToLower(strings.TrimSpace(header)))
	for _, c := range Columns {
		if strings.ToLower(c.Name) == norm {
			return c.Name, true
		}
	}
	return "", false
}

func columnNames() string {
	names := make([]string, len(Columns))
	for i, c := range Columns {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// Parse reads the rows of a batch file; name's extension picks the format
// (.csv, or .yaml/.yml). A file that cannot be read as a table is refused
// as a whole, with every problem found.
func Parse(name string, r io.Reader) ([]Row, error) {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv":
		return parseCSV(name, r)
	case ".yaml", ".yml":
		return parseYAML(name, r)
	}
	return nil, &FileError{File: name, Problems: []Problem{{Field: "format",
		Fix: "name the file .csv (a header row, then one tenant per row) or .yaml/.yml (a list of tenants); see README \"Many tenants\""}}}
}

func parseCSV(name string, r io.Reader) ([]Row, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, &FileError{File: name, Problems: []Problem{{Field: "header", Fix: "the file is empty; start with a header row such as: tenantId,orgUrl"}}}
	}
	if err != nil {
		return nil, &FileError{File: name, Problems: []Problem{{Field: "csv", Fix: err.Error()}}}
	}
	var problems []Problem
	cols := make([]string, len(header))
	for i, h := range header {
		c, ok := canonical(h)
		switch {
		case !ok:
			problems = append(problems, Problem{Field: "header", Value: h, Fix: "unknown column; the columns are " + columnNames()})
		case slices.Contains(cols, c):
			problems = append(problems, Problem{Field: "header", Value: h, Fix: "column " + c + " appears twice"})
		}
		cols[i] = c
	}
	for _, need := range []string{"tenantId", "orgUrl"} {
		if !slices.Contains(cols, need) {
			problems = append(problems, Problem{Field: "header", Fix: "column " + need + " is missing; the header must name at least tenantId and orgUrl"})
		}
	}
	if len(problems) > 0 {
		return nil, &FileError{File: name, Problems: problems}
	}
	var rows []Row
	for {
		line, _ := cr.FieldPos(0)
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		n := len(rows) + 1
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line = pe.Line
			}
			problems = append(problems, Problem{Row: n, Line: line, Field: "csv", Fix: err.Error()})
			rows = append(rows, Row{Number: n, Line: line})
			continue
		}
		line, _ = cr.FieldPos(0)
		row := Row{Number: n, Line: line, Values: map[string]string{}}
		if len(rec) > len(cols) {
			problems = append(problems, Problem{Row: n, Line: line, Field: "columns",
				Fix: fmt.Sprintf("%d values for %d columns; quote a value that contains a comma", len(rec), len(cols))})
		}
		for i, v := range rec {
			if i < len(cols) {
				row.Values[cols[i]] = strings.TrimSpace(v)
			}
		}
		rows = append(rows, row)
	}
	if len(problems) > 0 {
		return rows, &FileError{File: name, Rows: len(rows), Problems: problems}
	}
	return rows, nil
}

func parseYAML(name string, r io.Reader) ([]Row, error) {
	var doc yaml.Node
	if err := yaml.NewDecoder(r).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &FileError{File: name, Problems: []Problem{{Field: "yaml", Fix: "the file is empty; write a list of tenants, each with tenantId and orgUrl"}}}
		}
		return nil, &FileError{File: name, Problems: []Problem{{Field: "yaml", Fix: err.Error()}}}
	}
	list := &doc
	if list.Kind == yaml.DocumentNode && len(list.Content) == 1 {
		list = list.Content[0]
	}
	// Either a list, or a map with the list under "tenants".
	if list.Kind == yaml.MappingNode {
		var found *yaml.Node
		for i := 0; i+1 < len(list.Content); i += 2 {
			if list.Content[i].Value == "tenants" {
				found = list.Content[i+1]
			}
		}
		if found == nil {
			return nil, &FileError{File: name, Problems: []Problem{{Field: "yaml", Fix: "expected a list of tenants, or a map with the list under \"tenants\""}}}
		}
		list = found
	}
	if list.Kind != yaml.SequenceNode {
		return nil, &FileError{File: name, Problems: []Problem{{Field: "yaml", Fix: "expected a list of tenants, each a map with tenantId and orgUrl"}}}
	}
	var (
		rows     []Row
		problems []Problem
	)
	for i, item := range list.Content {
		row := Row{Number: i + 1, Line: item.Line, Values: map[string]string{}}
		if item.Kind != yaml.MappingNode {
			problems = append(problems, Problem{Row: row.Number, Line: row.Line, Field: "yaml", Fix: "each tenant must be a map such as {tenantId: ..., orgUrl: ...}"})
			rows = append(rows, row)
			continue
		}
		for j := 0; j+1 < len(item.Content); j += 2 {
			k, v := item.Content[j], item.Content[j+1]
			c, ok := canonical(k.Value)
			if !ok {
				problems = append(problems, Problem{Row: row.Number, Line: k.Line, Field: k.Value, Fix: "unknown key; the keys are " + columnNames()})
				continue
			}
			switch v.Kind {
			case yaml.ScalarNode:
				row.Values[c] = strings.TrimSpace(v.Value)
			case yaml.SequenceNode:
				var parts []string
				for _, e := range v.Content {
					parts = append(parts, strings.TrimSpace(e.Value))
				}
				row.Values[c] = strings.Join(parts, ";")
			default:
				problems = append(problems, Problem{Row: row.Number, Line: v.Line, Field: c, Fix: "expected a value or a list of values"})
			}
		}
		rows = append(rows, row)
	}
	if len(problems) > 0 {
		return rows, &FileError{File: name, Rows: len(rows), Problems: problems}
	}
	return rows, nil
}

// fieldColumn is the column a workflow input field is read from.
var fieldColumn = map[string]string{
	"tenantId": "tenantId", "orgUrl": "orgUrl", "appDisplayName": "appName", "secretLifetimeMonths": "secretMonths",
	"consentTimeout": "consentTimeout", "federation": "federation", "syncFilterEntities": "syncFilter",
	"solutionName": "solution", "minSolutionVersion": "minSolutionVersion",
}

// Build turns rows into onboarding inputs: base carries the settings that
// apply to every row (the defaults and `start`'s flags), a row's values
// override them, and validate is the same check a single start gets. Every
// bad value of every row is reported at once in a *FileError; rows naming
// the same tenant and org twice are refused too.
func Build(name string, rows []Row, base workflows.OnboardingInput, validate func(workflows.OnboardingInput) []workflows.FieldError) ([]Entry, error) {
	var (
		entries  []Entry
		problems []Problem
		seen     = map[string]int{}
	)
	for _, row := range rows {
		in, bad := rowInput(row, base)
		problems = append(problems, bad...)
		if len(bad) > 0 {
			continue
		}
		for _, fe := range validate(in) {
			col := fieldColumn[fe.Field]
			if col == "" {
				col = fe.Field
			}
			problems = append(problems, Problem{Row: row.Number, Line: row.Line, Field: col, Value: fe.Value, Fix: fe.Fix})
			bad = append(bad, Problem{})
		}
		if len(bad) > 0 {
			continue
		}
		id := in.WorkflowID()
		if first, dup := seen[id]; dup {
			problems = append(problems, Problem{Row: row.Number, Line: row.Line, Field: "orgUrl", Value: in.OrgURL,
				Fix: fmt.Sprintf("tenant %s and this org are already in row %d; one onboarding per tenant and org", in.TenantID, first)})
			continue
		}
		seen[id] = row.Number
		entries = append(entries, Entry{Row: row.Number, Line: row.Line, Input: in})
	}
	if len(rows) == 0 {
		problems = append(problems, Problem{Field: "rows", Fix: "the file has no tenants"})
	}
	if len(problems) > 0 {
		return nil, &FileError{File: name, Rows: len(rows), Problems: problems}
	}
	return entries, nil
}

func rowInput(row Row, base workflows.OnboardingInput) (workflows.OnboardingInput, []Problem) {
	in := base
	var problems []Problem
	bad := func(field, value, fix string) {
		problems = append(problems, Problem{Row: row.Number, Line: row.Line, Field: field, Value: value, Fix: fix})
	}
	v := row.Values
	in.TenantID, in.OrgURL = v["tenantId"], v["orgUrl"]
	if in.TenantID == "" {
		bad("tenantId", "", "empty; write the customer's Directory (tenant) ID, a GUID from Entra ID > Overview")
	}
	if in.OrgURL == "" {
		bad("orgUrl", "", "empty; write the org URL, e.g. https://contoso.crm.dynamics.com")
	}
	if s := v["appName"]; s != "" {
		in.AppDisplayName = s
	}
	if s := v["secretMonths"]; s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			bad("secretMonths", s, fmt.Sprintf("not a whole number of months; write 1 to %d", workflows.MaxSecretLifetimeMonths))
		}
		in.SecretLifetimeMonths = n
	}
	if s := v["consentTimeout"]; s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			bad("consentTimeout", s, "not a duration; write e.g. 72h or 30m (units h, m, s)")
		}
		in.ConsentTimeout = d
	}
	if s := v["federation"]; s != "" {
		in.Federation = workflows.FederationMode(strings.ToLower(s))
	}
	if s := v["syncFilter"]; s != "" {
		in.SyncFilterEntities = nil
		for _, e := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' || r == ' ' }) {
			in.SyncFilterEntities = append(in.SyncFilterEntities, e)
		}
	}
	if s := v["solution"]; s != "" {
		in.SolutionName = s
	}
	if s := v["minSolutionVersion"]; s != "" {
		in.MinSolutionVersion = s
	}
	months, timeout := in.SecretLifetimeMonths, in.ConsentTimeout
	in = in.WithDefaults()
	// A 0 written in the file stays 0 so validation refuses it (as for the flags).
	if v["secretMonths"] != "" {
		in.SecretLifetimeMonths = months
	}
	if v["consentTimeout"] != "" {
		in.ConsentTimeout = timeout
	}
	return in, problems
}
