package main

import (
	"fmt"
	"reflect"
	"unsafe"
)

// setUnexported sets the unexported field `name` of the struct *ptr to v.
// NetworkDB keeps its transport hook unexported (its own tests use it);
// this test program needs it to count bytes on the wire.
func setUnexported(ptr any, name string, v any) error {
	f := reflect.ValueOf(ptr).Elem().FieldByName(name)
	if !f.IsValid() {
		return fmt.Errorf("%T has no field %q: the pinned moby module changed", ptr, name)
	}
	val := reflect.ValueOf(v)
	if !val.Type().AssignableTo(f.Type()) {
		return fmt.Errorf("%T.%s is %s, not %s: the pinned moby module changed", ptr, name, f.Type(), val.Type())
	}
	reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Set(val) //nolint:gosec // test program
	return nil
}

// getUnexported reads the unexported field `name` of the struct *ptr.
func getUnexported[T any](ptr any, name string) (T, error) {
	var zero T
	f := reflect.ValueOf(ptr).Elem().FieldByName(name)
	if !f.IsValid() {
		return zero, fmt.Errorf("%T has no field %q: the pinned moby module changed", ptr, name)
	}
	v, ok := reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface().(T)
	if !ok {
		return zero, fmt.Errorf("%T.%s is %s, not %T: the pinned moby module changed", ptr, name, f.Type(), zero)
	}
	return v, nil
}
