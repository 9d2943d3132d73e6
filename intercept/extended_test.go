package intercept

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// frontendMessage encodes a client message.
func frontendMessage(t *testing.T, m pgproto3.FrontendMessage) []byte {
	t.Helper()
	b, err := m.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// errorCodes decodes the SQLSTATEs of the ErrorResponses in out.
func errorCodes(t *testing.T, out []byte) []string {
	t.Helper()
	var codes []string
	for len(out) >= 5 {
		n := int(out[1])<<24 | int(out[2])<<16 | int(out[3])<<8 | int(out[4])
		if out[0] == 'E' {
			var e pgproto3.ErrorResponse
			if err := e.Decode(out[5 : 1+n]); err != nil {
				t.Fatal(err)
			}
			codes = append(codes, e.Code)
		}
		out = out[1+n:]
	}
	return codes
}

func TestExtendedErrorsWithoutRunning(t *testing.T) {
	const call = "CALL migrate.add_field('invoice', '{}', dry_run => $1)"
	parse := &pgproto3.Parse{Name: "s", Query: call}
	tests := []struct {
		name string
		msgs []pgproto3.FrontendMessage
		want string
	}{
		{"bind of an unknown statement", []pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: "nope"}}, "26000"},
		{"describe of an unknown statement", []pgproto3.FrontendMessage{&pgproto3.Describe{ObjectType: 'S', Name: "nope"}}, "26000"},
		{"describe of an unknown portal", []pgproto3.FrontendMessage{&pgproto3.Describe{ObjectType: 'P', Name: "nope"}}, "34000"},
		{"execute of an unknown portal", []pgproto3.FrontendMessage{&pgproto3.Execute{Portal: "nope"}}, "34000"},
		{"binary boolean of two bytes", []pgproto3.FrontendMessage{parse, &pgproto3.Bind{PreparedStatement: "s", ParameterFormatCodes: []int16{1}, Parameters: [][]byte{{1, 1}}}}, "22P03"},
		{"text boolean misspelled", []pgproto3.FrontendMessage{parse, &pgproto3.Bind{PreparedStatement: "s", Parameters: [][]byte{[]byte("maybe")}}}, "22P02"},
		{"parse of a syntax error", []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "CALL migrate.add_field("}}, "42601"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var msgs [][]byte
			for _, m := range tt.msgs {
				msgs = append(msgs, frontendMessage(t, m))
			}
			msgs = append(msgs, frontendMessage(t, &pgproto3.Execute{Portal: "after"}), frontendMessage(t, &pgproto3.Sync{}))
			c := &Conversation{}
			out := (&Handler{}).Extended(context.Background(), Session{}, c, msgs)
			if codes := errorCodes(t, out); len(codes) != 1 || codes[0] != tt.want {
				t.Fatalf("errors %v, want one %s (the rest skipped to Sync)", codes, tt.want)
			}
			if c.Failed() {
				t.Fatal("the Sync did not end the failure")
			}
		})
	}
}

func TestBinaryBooleanParameter(t *testing.T) {
	cmd, err := Parse("CALL migrate.add_field('invoice', '{}', dry_run => $1)")
	if err != nil {
		t.Fatal(err)
	}
	if types := cmd.ParamTypes(); len(types) != 1 || types[0] != 16 {
		t.Fatalf("parameter types %v, want [16] (bool)", types)
	}
	params, err := paramValues(cmd, &pgproto3.Bind{ParameterFormatCodes: []int16{1}, Parameters: [][]byte{{1}}})
	if err != nil || *params[0] != "true" {
		t.Fatalf("binary true read as %v, %v", params, err)
	}
	var e *Error
	if _, err := paramValues(cmd, &pgproto3.Bind{ParameterFormatCodes: []int16{1}, Parameters: [][]byte{{}}}); !errors.As(err, &e) || e.Code != "22P03" {
		t.Fatalf("empty binary boolean: %v", err)
	}
}
