package jsonscan

import "testing"

func TestUint(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{" 1790000000", 1790000000, true},
		{"999999999999999", 999999999999999, true},
		{"1000000000000000", 0, false}, // 16 digits
		{"01", 0, false},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"1e3", 0, false},
		{"1E3", 0, false},
		{"", 0, false},
		{"x", 0, false},
		{`"1"`, 0, false},
	} {
		got, ok := New(tt.in).Uint()
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("Uint(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

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

// TestFields reads the named members each once, and gives up on any other
// key or a repeated one.
func TestFields(t *testing.T) {
	keys := []string{"a", "b", "c"}
	for _, tt := range []struct {
		in   string
		want string
		ok   bool
	}{
		{`{"c":"3","a":"1"}`, "c=3 a=1 ", true},
		{`{}`, "", true},
		{`{"a":"1","a":"2"}`, "a=1 ", false},
		{`{"A":"1"}`, "", false},
		{`{"d":"1"}`, "", false},
	} {
		p := New(tt.in)
		got := ""
		ok := p.Fields(keys, func(i int) bool {
			v, ok := p.Str()
			got += keys[i] + "=" + v + " "
			return ok
		})
		if ok != tt.ok || got != tt.want {
			t.Errorf("Fields(%q) read %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
