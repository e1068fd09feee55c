// Package typeinfo answers questions about Go types that socktable's
// tables and tests both need.
package typeinfo

import "reflect"

// HasPointers reports whether a value of type t holds any pointer the
// garbage collector must scan (pointers, slices, strings, maps, chans,
// funcs, interfaces, or arrays and structs containing them).
func HasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Array:
		return t.Len() > 0 && HasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if HasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	case reflect.Pointer, reflect.UnsafePointer, reflect.Map, reflect.Chan, reflect.Func,
		reflect.Interface, reflect.Slice, reflect.String:
		return true
	}
	return false
}
