package emulator

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// A deliberately small OData v4 $filter: comparisons (eq, ne) of a property with a literal,
// combined with and/or and parentheses. Literal types are checked against the property's type
// the way Dataverse does ('...' is Edm.String; an unquoted GUID is Edm.Guid), so a client that
// quotes a GUID column is rejected here as it would be by the real service.

type colType int

const (
	tString colType = iota
	tGUID
	tBool
	tInt
)

func (t colType) String() string {
	return [...]string{"Edm.String", "Edm.Guid", "Edm.Boolean", "Edm.Int32"}[t]
}

type filterExpr interface {
	eval(rec map[string]any) bool
}

type cmpExpr struct {
	prop string
	neg  bool
	val  any // nil, string, bool, int
}

func (e cmpExpr) eval(rec map[string]any) bool {
	v := rec[e.prop]
	var eq bool
	switch x := e.val.(type) {
	case nil:
		eq = v == nil
	case string:
		s, ok := v.(string)
		eq = ok && strings.EqualFold(s, x)
	default:
		eq = v == x
	}
	return eq != e.neg
}

type boolExpr struct {
	and  bool
	l, r filterExpr
}

func (e boolExpr) eval(rec map[string]any) bool {
	if e.and {
		return e.l.eval(rec) && e.r.eval(rec)
	}
	return e.l.eval(rec) || e.r.eval(rec)
}

type filterParser struct {
	toks   []string
	pos    int
	schema map[string]colType
}

// parseFilter parses a $filter against the entity's property types.
func parseFilter(src string, schema map[string]colType) (filterExpr, error) {
	toks, err := tokenize(src)
	if err != nil {
		return nil, err
	}
	p := &filterParser{toks: toks, schema: schema}
	e, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, fmt.Errorf("syntax error at position %d in '%s'", p.pos, src)
	}
	return e, nil
}

func tokenize(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		switch ch := s[i]; {
		case ch == ' ':
			i++
		case ch == '(' || ch == ')':
			toks = append(toks, string(ch))
			i++
		case ch == '\'':
			j := i + 1
			var b strings.Builder
			b.WriteByte('\'')
			for {
				if j >= len(s) {
					return nil, fmt.Errorf("unterminated string literal at position %d", i)
				}
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						b.WriteByte('\'')
						j += 2
						continue
					}
					break
				}
				b.WriteByte(s[j])
				j++
			}
			toks = append(toks, b.String()+"'")
			i = j + 1
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '(' && s[j] != ')' {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks, nil
}

func (p *filterParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *filterParser) or() (filterExpr, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.peek() == "or" {
		p.pos++
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = boolExpr{and: false, l: l, r: r}
	}
	return l, nil
}

func (p *filterParser) and() (filterExpr, error) {
	l, err := p.term()
	if err != nil {
		return nil, err
	}
	for p.peek() == "and" {
		p.pos++
		r, err := p.term()
		if err != nil {
			return nil, err
		}
		l = boolExpr{and: true, l: l, r: r}
	}
	return l, nil
}

func (p *filterParser) term() (filterExpr, error) {
	if p.peek() == "(" {
		p.pos++
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, fmt.Errorf("')' expected at position %d", p.pos)
		}
		p.pos++
		return e, nil
	}
	if p.pos+3 > len(p.toks) {
		return nil, fmt.Errorf("expression expected at position %d", p.pos)
	}
	prop, op, lit := p.toks[p.pos], p.toks[p.pos+1], p.toks[p.pos+2]
	p.pos += 3
	typ, ok := p.schema[prop]
	if !ok {
		return nil, &unknownPropError{prop: prop}
	}
	if op != "eq" && op != "ne" {
		return nil, fmt.Errorf("operator '%s' is not supported", op)
	}
	val, litType, err := literal(lit)
	if err != nil {
		return nil, err
	}
	if val != nil && litType != typ {
		return nil, fmt.Errorf("a binary operator with incompatible types was detected. Found operand types '%s' and '%s' for operator kind 'Equal'", typ, litType)
	}
	if s, ok := val.(string); ok && typ == tGUID {
		val = strings.ToLower(s)
	}
	return cmpExpr{prop: prop, neg: op == "ne", val: val}, nil
}

type unknownPropError struct{ prop string }

func (e *unknownPropError) Error() string {
	return fmt.Sprintf("could not find a property named '%s'", e.prop)
}

func literal(t string) (any, colType, error) {
	switch {
	case strings.HasPrefix(t, "'"):
		return t[1 : len(t)-1], tString, nil
	case t == "null":
		return nil, tString, nil
	case t == "true" || t == "false":
		return t == "true", tBool, nil
	case isGUID(t):
		return t, tGUID, nil
	}
	if n, err := strconv.Atoi(t); err == nil {
		return n, tInt, nil
	}
	return nil, 0, fmt.Errorf("unrecognized literal '%s'", t)
}

// queryOptions are the system query options the emulator understands.
type queryOptions struct {
	filter filterExpr
	selec  []string
	top    int
}

// parseQuery reads $filter, $select and $top; any other $option is reported as unsupported.
func parseQuery(q url.Values, schema map[string]colType) (queryOptions, error) {
	var o queryOptions
	for k := range q {
		switch k {
		case "$filter", "$select", "$top", "$count", "$orderby":
		default:
			if strings.HasPrefix(k, "$") {
				return o, fmt.Errorf("the query parameter '%s' is not supported", k)
			}
		}
	}
	if f := q.Get("$filter"); f != "" {
		e, err := parseFilter(f, schema)
		if err != nil {
			return o, err
		}
		o.filter = e
	}
	if sel := q.Get("$select"); sel != "" {
		for _, p := range strings.Split(sel, ",") {
			p = strings.TrimSpace(p)
			if _, ok := schema[p]; !ok {
				return o, &unknownPropError{prop: p}
			}
			o.selec = append(o.selec, p)
		}
	}
	if t := q.Get("$top"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return o, fmt.Errorf("invalid value '%s' for $top", t)
		}
		o.top = n
	}
	return o, nil
}

// apply filters, limits and projects records; keep lists the properties always returned.
func (o queryOptions) apply(recs []map[string]any, keep ...string) []map[string]any {
	out := []map[string]any{}
	for _, r := range recs {
		if o.filter != nil && !o.filter.eval(r) {
			continue
		}
		if o.top > 0 && len(out) >= o.top {
			break
		}
		if len(o.selec) > 0 {
			p := map[string]any{}
			for _, k := range append(o.selec, keep...) {
				if v, ok := r[k]; ok {
					p[k] = v
				}
			}
			r = p
		}
		out = append(out, r)
	}
	return out
}
