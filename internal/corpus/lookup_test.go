package corpus

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The committed lookup corpus reads back, and re-encoding each case gives
// back its line byte for byte, both result shapes included.
func TestReadLookupCasesRoundTrip(t *testing.T) {
	cases := requireRoundTrip(t, filepath.Join(kernelDir, LookupFile), ReadLookupCases)
	var accepted, refused int
	for _, c := range cases {
		for _, cn := range c.Connects {
			if cn.Result.Err == "" {
				accepted++
			} else {
				refused++
			}
		}
	}
	require.Positive(t, accepted)
	require.Positive(t, refused)
}

const goodLookup = `{"id":"l","listeners":[` +
	`{"family":4,"v6only":null,"addr":"0.0.0.0","port":20000,"reuseport":true,"reuseaddr":false},` +
	`{"family":6,"v6only":false,"addr":"::","port":20000,"reuseport":true,"reuseaddr":false}],` +
	`"client_family":6,"dst_addr":"::ffff:127.0.0.1","dst_port":20000,"connects":[` +
	`{"src_addr":"::ffff:127.0.0.1","src_port":20001,"result":1},` +
	`{"src_addr":"::ffff:127.0.0.5","src_port":20002,"result":"ECONNREFUSED"}],"kernel":"k"}`

func TestReadLookupCasesMalformed(t *testing.T) {
	e := func(old, new string) string { return edit(t, goodLookup, old, new) }
	requireMalformed(t, ReadLookupCases, goodLookup, map[string]string{
		"not json":                `[`,
		"trailing data":           goodLookup + `{}`,
		"unknown field":           e(`"kernel":"k"`, `"kernel":"k","uid":0`),
		"unknown listener field":  e(`"reuseaddr":false}]`, `"reuseaddr":false,"uid":0}]`),
		"unknown connect field":   e(`"result":1}`, `"result":1,"ok":true}`),
		"no id":                   e(`"id":"l"`, `"id":""`),
		"no kernel":               e(`"kernel":"k"`, `"kernel":""`),
		"no listeners":            `{"id":"l","listeners":[],"client_family":4,"dst_addr":"127.0.0.1","dst_port":1,"connects":[],"kernel":"k"}`,
		"result past listeners":   e(`"result":1}`, `"result":2}`),
		"negative result":         e(`"result":1}`, `"result":-1}`),
		"fractional result":       e(`"result":1}`, `"result":1.5}`),
		"null result":             e(`"result":1}`, `"result":null}`),
		"empty result":            e(`"result":"ECONNREFUSED"`, `"result":""`),
		"boolean result":          e(`"result":1}`, `"result":true}`),
		"client family 5":         e(`"client_family":6`, `"client_family":5`),
		"dst of other family":     e(`"dst_addr":"::ffff:127.0.0.1"`, `"dst_addr":"127.0.0.1"`),
		"src of other family":     e(`"src_addr":"::ffff:127.0.0.5"`, `"src_addr":"127.0.0.5"`),
		"bad src":                 e(`"src_addr":"::ffff:127.0.0.5"`, `"src_addr":"::ffff:127.0.0.500"`),
		"src port out of range":   e(`"src_port":20002`, `"src_port":65536`),
		"dst port out of range":   e(`"dst_port":20000`, `"dst_port":-1`),
		"listener family 0":       e(`"family":4,`, `"family":0,`),
		"listener v6only on v4":   e(`"family":4,"v6only":null`, `"family":4,"v6only":true`),
		"listener no v6only on 6": e(`"family":6,"v6only":false`, `"family":6,"v6only":null`),
		"listener bad address":    e(`"addr":"0.0.0.0"`, `"addr":"0.0.0"`),
		"listener port too big":   e(`"addr":"::","port":20000`, `"addr":"::","port":65536`),
	})
}

func TestLookupResultJSON(t *testing.T) {
	for _, tc := range []struct {
		r    LookupResult
		want string
	}{
		{LookupResult{Listener: 0}, `0`},
		{LookupResult{Listener: 3}, `3`},
		{LookupResult{Err: "ECONNREFUSED"}, `"ECONNREFUSED"`},
		{LookupResult{Err: NotAccepted}, `"NOT_ACCEPTED"`},
	} {
		b, err := json.Marshal(tc.r)
		require.NoError(t, err)
		require.Equal(t, tc.want, string(b))
		var back LookupResult
		require.NoError(t, json.Unmarshal(b, &back))
		require.Equal(t, tc.r, back)
	}
}

// The committed UDP lookup corpus reads back line for line: every case
// UDP, connected sockets and refused datagrams among them.
func TestReadUDPLookupCorpusRoundTrip(t *testing.T) {
	cases := requireRoundTrip(t, filepath.Join(kernelDir, UDPLookupFile), ReadLookupCases)
	var received, refused, connected int
	for _, c := range cases {
		require.Equal(t, ProtoUDP, c.Proto, c.ID)
		for _, l := range c.Listeners {
			if l.ConnectPort != 0 {
				connected++
			}
		}
		for _, cn := range c.Connects {
			if cn.Result.Err == "" {
				received++
			} else {
				refused++
			}
		}
	}
	require.Positive(t, received)
	require.Positive(t, refused)
	require.Positive(t, connected)
}

// A connected or disconnected socket belongs to a UDP case only, with a
// whole peer and the addresses getsockname(2) gave.
func TestReadUDPLookupMalformed(t *testing.T) {
	udp := strings.Replace(goodLookup, `{"id":"l",`, `{"id":"l","proto":"udp",`, 1)
	conn := strings.Replace(udp, `"reuseport":true,"reuseaddr":false},`,
		`"reuseport":true,"reuseaddr":false,"connect_addr":"127.0.0.1","connect_port":9,"connected_addr":"127.0.0.1","disconnect":true,"disconnected_addr":"0.0.0.0"},`, 1)
	c, err := ParseLookupLine([]byte(conn))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", c.Listeners[0].ConnectedAddr)
	require.True(t, c.Listeners[0].Disconnect)
	require.Equal(t, "0.0.0.0", c.Listeners[0].DisconnectedAddr)
	dev, err := ParseLookupLine([]byte(strings.Replace(strings.Replace(conn, `"connect_addr"`, `"device":2,"connect_addr"`, 1), `"kernel"`, `"in_device":1,"kernel"`, 1)))
	require.NoError(t, err)
	require.Equal(t, 2, dev.Listeners[0].Device)
	require.Equal(t, 1, dev.InDevice)
	require.Equal(t, 2, dev.Listeners[0].BindSock().Device)
	e := func(old, new string) string { return edit(t, conn, old, new) }
	requireMalformed(t, ReadLookupCases, conn, map[string]string{
		"connected tcp listener":        e(`"proto":"udp",`, ``),
		"unknown proto":                 e(`"proto":"udp"`, `"proto":"sctp"`),
		"connect without port":          e(`,"connect_port":9`, ``),
		"connect without addr":          e(`"connect_addr":"127.0.0.1",`, ``),
		"connect to other family":       e(`"connect_addr":"127.0.0.1"`, `"connect_addr":"::1"`),
		"connect without address after": e(`,"connected_addr":"127.0.0.1"`, ``),
		"address after no connect":      e(`"connect_addr":"127.0.0.1","connect_port":9,`, ``),
		"disconnect without address":    e(`,"disconnected_addr":"0.0.0.0"`, ``),
		"address after no disconnect":   e(`"disconnect":true,`, ``),
		"negative device":               e(`"connect_addr"`, `"device":-1,"connect_addr"`),
		"in_device in a tcp case":       e(`"proto":"udp",`, `"in_device":1,`),
	})
}
