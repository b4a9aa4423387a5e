package jsonscan

import "testing"

// TestObject reads objects of strings and nulls, and stops at the first
// thing out of place.
func TestObject(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string // the keys and values read, in order
		ok   bool
	}{
		{`{}`, "", true},
		{" { \"a\" : \"1\" ,\n\"b\":\t\"\" } ", "a=1 b= ", true},
		{`{"a":null}`, "a=null ", true},
		{`{"a":"1",}`, "a=1 ", false},
		{`{"a" "1"}`, "", false},
		{`{"a":"1"`, "a=1 ", false},
		{`{"a\"":"1"}`, "", false},
		{"{\"a\":\"\t\"}", "", false},
		{`{"a":1}`, "", false},
		{`["a"]`, "", false},
		{`{"a":"x\"}`, "", false},
	} {
		p := New(tt.in)
		got := ""
		ok := p.Object(func(key string) bool {
			if p.Null() {
				got += key + "=null "
				return true
			}
			v, ok := p.Str()
			if ok {
				got += key + "=" + v + " "
			}
			return ok
		})
		if ok != tt.ok || got != tt.want {
			t.Errorf("Object(%q) read %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	if p := New(` {} `); !p.Object(func(string) bool { return false }) || !p.End() {
		t.Error("whitespace after the object is not its end")
	}
	if p := New(`{} x`); !p.Object(func(string) bool { return false }) || p.End() {
		t.Error("End ignored what follows the object")
	}
}
