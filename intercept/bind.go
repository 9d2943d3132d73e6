package intercept

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
)

// argType is how an argument's value is checked.
type argType int

const (
	textArg argType = iota // any text
	jsonArg                // a JSON document, left for the engine to read
	boolArg                // a boolean in PostgreSQL's spellings
)

// param is an argument in a procedure's signature.
type param struct {
	name     string
	typ      argType
	required bool
}

func required(name string, typ argType) param { return param{name: name, typ: typ, required: true} }
func optional(name string, typ argType) param { return param{name: name, typ: typ} }

// procedure is the signature of a migrate procedure.
type procedure struct {
	args     []param // positional arguments, in order; they may be named too
	mutating bool
	admin    bool // only admin sessions may call it
}

// procedures are the migrate procedures by name.
var procedures = map[string]*procedure{
	"create_model":  {mutating: true, args: []param{required("model", textArg), required("fields", jsonArg), optional("options", jsonArg)}},
	"add_field":     {mutating: true, args: []param{required("model", textArg), required("field", jsonArg)}},
	"drop_field":    {mutating: true, args: []param{required("model", textArg), required("field", textArg)}},
	"drop_model":    {mutating: true, args: []param{required("model", textArg)}},
	"rename_field":  {mutating: true, args: []param{required("model", textArg), required("from", textArg), required("to", textArg)}},
	"alter_field":   {mutating: true, args: []param{required("model", textArg), required("field", jsonArg)}},
	"describe":      {args: []param{required("model", textArg)}},
	"list_models":   {},
	"history":       {args: []param{optional("model", textArg)}},
	"verify":        {},
	"adopt_model":   {mutating: true, admin: true, args: []param{required("model", textArg)}},
	"create_tenant": {mutating: true, admin: true, args: []param{required("org", textArg), optional("upstream", textArg), optional("login", boolArg)}},
	"drop_tenant":   {mutating: true, admin: true, args: []param{required("org", textArg)}},
	"list_tenants":  {admin: true},
}

// options are the arguments every procedure takes by name only, unless it
// has one of them among its positional arguments.
var options = []param{optional("org", textArg), optional("dry_run", boolArg), optional("confirm", boolArg)}

// Procedures returns the names of the migrate procedures, sorted.
func Procedures() []string {
	return slices.Sorted(maps.Keys(procedures))
}

// lookup returns the procedure of that name.
func lookup(name string) (*procedure, error) {
	if p, ok := procedures[name]; ok {
		return p, nil
	}
	return nil, &Error{Code: codeUndefinedFunction,
		Msg:      fmt.Sprintf("procedure migrate.%s does not exist", name),
		HintText: "The migrate procedures are " + strings.Join(Procedures(), ", ") + "."}
}

// namedOnly returns the options the procedure does not take positionally.
func (p *procedure) namedOnly() []param {
	return slices.DeleteFunc(slices.Clone(options), func(o param) bool {
		return slices.ContainsFunc(p.args, func(a param) bool { return a.name == o.name })
	})
}

// usage describes how to call the procedure, for a HINT.
func (p *procedure) usage(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Call it as migrate.%s(", name)
	for i, a := range p.args {
		sep := ""
		if i > 0 {
			sep = ", "
		}
		if a.required {
			b.WriteString(sep + a.name)
		} else {
			b.WriteString("[" + sep + a.name + "]")
		}
	}
	var named []string
	for _, o := range p.namedOnly() {
		named = append(named, o.name)
	}
	fmt.Fprintf(&b, "), with %s and %s by name.", strings.Join(named[:len(named)-1], ", "), named[len(named)-1])
	return b.String()
}

// resolve matches the command's arguments to the procedure's, as
// PostgreSQL does: positional arguments first, then named ones, each
// argument given once and every required one given. It returns the
// parameter of each argument.
func (p *procedure) resolve(c *Command) ([]param, error) {
	fail := func(format string, args ...any) error {
		return &Error{Code: codeSyntaxError, Msg: fmt.Sprintf(format, args...), HintText: p.usage(c.Proc)}
	}
	named := p.namedOnly()
	resolved := make([]param, len(c.Args))
	for i, a := range c.Args {
		switch {
		case a.Name == "" && i > 0 && c.Args[i-1].Name != "":
			return nil, fail("positional argument cannot follow named argument")
		case a.Name == "" && i >= len(p.args):
			return nil, fail("too many arguments for migrate.%s", c.Proc)
		case a.Name == "":
			resolved[i] = p.args[i]
			continue
		}
		k := slices.IndexFunc(p.args, func(q param) bool { return q.name == a.Name })
		if k >= 0 {
			resolved[i] = p.args[k]
		} else if k = slices.IndexFunc(named, func(q param) bool { return q.name == a.Name }); k >= 0 {
			resolved[i] = named[k]
		} else {
			return nil, fail("procedure migrate.%s has no argument %q", c.Proc, a.Name)
		}
		if slices.ContainsFunc(resolved[:i], func(q param) bool { return q.name == a.Name }) {
			return nil, fail("argument %q of migrate.%s is given more than once", a.Name, c.Proc)
		}
	}
	for _, q := range p.args {
		if q.required && !slices.ContainsFunc(resolved, func(r param) bool { return r.name == q.name }) {
			return nil, fail("missing argument %q of migrate.%s", q.name, c.Proc)
		}
	}
	return resolved, nil
}

// Call is a migrate command bound to its parameters and its procedure's
// signature, ready to run.
type Call struct {
	Proc    string
	Args    map[string]string // the non-null arguments by name; booleans are "true" or "false"
	Org     string            // the org argument, "" if absent
	DryRun  bool
	Confirm bool
}

// Mutating reports whether the procedure changes a schema or the tenants.
func (c *Call) Mutating() bool {
	p, ok := procedures[c.Proc]
	return ok && p.mutating
}

// Bind binds the command to params, the text values of $1..$n (nil for
// NULL), and checks the values: a required argument may not be NULL, a
// boolean must be spelled as PostgreSQL accepts and JSON must be valid.
// Optional arguments that are NULL count as absent.
func (c *Command) Bind(params []*string) (*Call, error) {
	proc, err := lookup(c.Proc)
	if err != nil {
		return nil, err
	}
	resolved, err := proc.resolve(c)
	if err != nil {
		return nil, err
	}
	call := &Call{Proc: c.Proc, Args: make(map[string]string, len(c.Args))}
	for i, a := range c.Args {
		p := resolved[i]
		v, err := a.bound(params)
		if err != nil {
			return nil, err
		}
		if v == nil {
			if p.required {
				return nil, errorf(codeNullValueNotAllowed, "argument %q of migrate.%s may not be NULL", p.name, c.Proc)
			}
			continue
		}
		value, err := p.check(*v, c.Proc)
		if err != nil {
			return nil, err
		}
		call.Args[p.name] = value
	}
	call.Org = call.Args["org"]
	call.DryRun = call.Args["dry_run"] == "true"
	call.Confirm = call.Args["confirm"] == "true"
	return call, nil
}

// bound returns the argument's value given the parameters, nil for NULL.
func (a *Arg) bound(params []*string) (*string, error) {
	switch a.Kind {
	case Null:
		return nil, nil
	case Param:
		if a.Param < 1 || a.Param > len(params) {
			return nil, errorf(codeUndefinedParameter, "there is no parameter $%d", a.Param)
		}
		return params[a.Param-1], nil
	}
	return &a.Value, nil
}

// check checks a value of the parameter and returns it, booleans as "true"
// or "false".
func (p param) check(value, proc string) (string, error) {
	switch p.typ {
	case boolArg:
		b, ok := parseBool(value)
		if !ok {
			return "", errorf(codeInvalidTextRepresentation, "argument %q of migrate.%s must be a boolean, not %q", p.name, proc, value)
		}
		return strconv.FormatBool(b), nil
	case jsonArg:
		if err := json.Unmarshal([]byte(value), new(json.RawMessage)); err != nil {
			return "", &Error{Code: codeInvalidTextRepresentation,
				Msg:        fmt.Sprintf("argument %q of migrate.%s must be valid JSON", p.name, proc),
				DetailText: err.Error()}
		}
	}
	return value, nil
}

// parseBool reads a boolean as PostgreSQL spells one.
func parseBool(s string) (value, ok bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "t", "yes", "on", "1":
		return true, true
	case "false", "f", "no", "off", "0":
		return false, true
	}
	return false, false
}

// ParamTypes returns the type OID of each parameter $1..$n, as a Describe
// reports them: boolean for a boolean argument, text for the rest (a
// parameter used twice takes its first use's type).
func (c *Command) ParamTypes() []uint32 {
	oids := make([]uint32, c.ParamCount())
	for i := range oids {
		oids[i] = pgtype.TextOID
	}
	proc, err := lookup(c.Proc)
	if err != nil {
		return oids
	}
	resolved, err := proc.resolve(c)
	if err != nil {
		return oids
	}
	for i := len(c.Args) - 1; i >= 0; i-- {
		if a := c.Args[i]; a.Kind == Param && a.Param > 0 && resolved[i].typ == boolArg {
			oids[a.Param-1] = pgtype.BoolOID
		}
	}
	return oids
}
