package typeinfo_test

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socktable/socktable/internal/typeinfo"
)

func TestHasPointers(t *testing.T) {
	for _, c := range []struct {
		typ  reflect.Type
		want bool
	}{
		{reflect.TypeFor[uint64](), false},
		{reflect.TypeFor[[4]uint32](), false},
		{reflect.TypeFor[struct{ a, b uint64 }](), false},
		{reflect.TypeFor[[0]*int](), false},
		{reflect.TypeFor[string](), true},
		{reflect.TypeFor[[]byte](), true},
		{reflect.TypeFor[*int](), true},
		{reflect.TypeFor[map[int]int](), true},
		{reflect.TypeFor[struct{ a [2]*int }](), true},
		{reflect.TypeFor[netip.Addr](), true},
		{reflect.TypeFor[any](), true},
		{reflect.TypeFor[func()](), true},
		{reflect.TypeFor[chan int](), true},
	} {
		require.Equal(t, c.want, typeinfo.HasPointers(c.typ), "%v", c.typ)
	}
}
