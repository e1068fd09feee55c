package corpus

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// The committed bind corpus reads back, and re-encoding each case gives
// back its line byte for byte, in both op shapes.
func TestReadBindCasesRoundTrip(t *testing.T) {
	cases := requireRoundTrip(t, filepath.Join(kernelDir, BindFile), ReadBindCases)
	kinds, actions := map[string]int{}, map[string]int{}
	for _, c := range cases {
		kinds[c.Kind]++
		for _, o := range c.Ops {
			actions[o.Action]++
		}
	}
	// Every kind and both shapes (every action) are in the corpus, so the
	// round trip covers them all.
	for _, k := range []string{KindPair, KindSequence, KindTimewait, KindPort0} {
		require.Positive(t, kinds[k], k)
	}
	for _, a := range []string{ActionBind, ActionBindListen, ActionBindConnect, ActionListen} {
		require.Positive(t, actions[a], a)
	}
}

// goodBindLines are valid lines, one per shape the malformed edits need.
const (
	goodSeq = `{"id":"s","kind":"sequence","port":20000,"ops":[` +
		`{"family":6,"v6only":false,"addr":"::","port":20000,"reuseaddr":true,"reuseport":false,"uid":1000,"action":"bind+connect","connect_to":["::ffff:127.0.0.1",9000],"result":"ok","bound_port":20000},` +
		`{"family":4,"v6only":null,"addr":"127.0.0.1","port":20000,"reuseaddr":false,"reuseport":false,"uid":0,"action":"bind","result":"EADDRINUSE","stage":"bind"},` +
		`{"action":"listen","target":0,"result":"EADDRINUSE","stage":"listen"},` +
		`{"action":"listen","target":1,"result":"SKIPPED_TARGET_NOT_BOUND"}],"kernel":"k"}`
	goodTW = `{"id":"t","kind":"timewait","port":20001,"ops":[{"family":4,"v6only":null,"addr":"0.0.0.0","port":20001,"reuseaddr":false,"reuseport":true,"uid":0,"action":"bind+listen","result":"ok","bound_port":20001}],` +
		`"prelude":{"listener":{"family":4,"v6only":null,"addr":"127.0.0.1","port":20001,"reuseaddr":false,"reuseport":false,"uid":0},"client_dst":"127.0.0.1","who_closed_first":"server"},"kernel":"k"}`
	goodPort0 = `{"id":"p","kind":"port0","port":0,"ops":[{"family":4,"v6only":null,"addr":"0.0.0.0","port":0,"reuseaddr":false,"reuseport":false,"uid":0,"action":"bind","result":"ok","bound_port":40000}],"port_range":[32768,60999],"kernel":"k"}`
)

func TestReadBindCasesMalformed(t *testing.T) {
	e := func(good, old, new string) string { return edit(t, good, old, new) }
	requireMalformed(t, ReadBindCases, goodSeq, map[string]string{
		"not json":                  `{"id":"s",`,
		"trailing data":             goodSeq + `x`,
		"unknown case field":        e(goodSeq, `"kernel":"k"`, `"kernel":"k","kernal":"k"`),
		"unknown op field":          e(goodSeq, `"uid":0,`, `"uid":0,"owner":0,`),
		"no id":                     e(goodSeq, `"id":"s"`, `"id":""`),
		"no kernel":                 e(goodSeq, `"kernel":"k"`, `"kernel":""`),
		"unknown kind":              e(goodSeq, `"kind":"sequence"`, `"kind":"seq"`),
		"case port out of range":    e(goodSeq, `"port":20000,"ops"`, `"port":70000,"ops"`),
		"no ops":                    `{"id":"s","kind":"sequence","port":20000,"ops":[],"kernel":"k"}`,
		"prelude on a sequence":     e(goodSeq, `"kernel":"k"`, `"prelude":{"listener":{"family":4,"v6only":null,"addr":"127.0.0.1","port":1,"reuseaddr":false,"reuseport":false,"uid":0},"client_dst":"127.0.0.1","who_closed_first":"server"},"kernel":"k"`),
		"port_range on a sequence":  e(goodSeq, `"kernel":"k"`, `"port_range":[1,2],"kernel":"k"`),
		"unknown action":            e(goodSeq, `"action":"bind","result"`, `"action":"connect","result"`),
		"no result":                 e(goodSeq, `"target":0,"result":"EADDRINUSE","stage":"listen"`, `"target":0`),
		"ok with a stage":           e(goodSeq, `"result":"EADDRINUSE","stage":"bind"`, `"result":"ok","stage":"bind"`),
		"error without a stage":     e(goodSeq, `"result":"EADDRINUSE","stage":"bind"`, `"result":"EADDRINUSE"`),
		"bind failing at listen":    e(goodSeq, `"result":"EADDRINUSE","stage":"bind"`, `"result":"EADDRINUSE","stage":"listen"`),
		"skipped socket op":         e(goodSeq, `"result":"EADDRINUSE","stage":"bind"`, `"result":"SKIPPED_TARGET_NOT_BOUND"`),
		"listen without a target":   e(goodSeq, `"target":1,`, ``),
		"listen of itself":          e(goodSeq, `"target":1,`, `"target":3,`),
		"listen of a later op":      e(goodSeq, `"target":0,`, `"target":3,`),
		"listen of a listen":        e(goodSeq, `"target":1,`, `"target":2,`),
		"listen of a negative op":   e(goodSeq, `"target":1,`, `"target":-1,`),
		"listen with socket fields": e(goodSeq, `{"action":"listen","target":1`, `{"family":4,"action":"listen","target":1`),
		"listen with v6only":        e(goodSeq, `{"action":"listen","target":1`, `{"v6only":false,"action":"listen","target":1`),
		"listen with a bound port":  e(goodSeq, `"target":1,"result":"SKIPPED_TARGET_NOT_BOUND"`, `"target":1,"result":"SKIPPED_TARGET_NOT_BOUND","bound_port":1`),
		"socket op with a target":   e(goodSeq, `"action":"bind","result"`, `"action":"bind","target":0,"result"`),
		"connect_to on a bind":      e(goodSeq, `"action":"bind","result"`, `"action":"bind","connect_to":["127.0.0.1",9000],"result"`),
		"connect without target":    e(goodSeq, `"connect_to":["::ffff:127.0.0.1",9000],`, ``),
		"connect_to of one element": e(goodSeq, `["::ffff:127.0.0.1",9000]`, `["::ffff:127.0.0.1"]`),
		"connect_to port a string":  e(goodSeq, `["::ffff:127.0.0.1",9000]`, `["::ffff:127.0.0.1","9000"]`),
		"connect_to port 0":         e(goodSeq, `["::ffff:127.0.0.1",9000]`, `["::ffff:127.0.0.1",0]`),
		"connect_to address null":   e(goodSeq, `["::ffff:127.0.0.1",9000]`, `[null,9000]`),
		"connect_to wrong family":   e(goodSeq, `"addr":"::","port":20000,"reuseaddr":true,"reuseport":false,"uid":1000,"action":"bind+connect","connect_to":["::ffff:127.0.0.1",9000]`, `"addr":"::","port":20000,"reuseaddr":true,"reuseport":false,"uid":1000,"action":"bind+connect","connect_to":["127.0.0.1",9000]`),
		"family 5":                  e(goodSeq, `"family":4,`, `"family":5,`),
		"v6only on family 4":        e(goodSeq, `"family":4,"v6only":null`, `"family":4,"v6only":false`),
		"no v6only on family 6":     e(goodSeq, `"family":6,"v6only":false`, `"family":6,"v6only":null`),
		"bad address":               e(goodSeq, `"addr":"127.0.0.1"`, `"addr":"127.0.0.256"`),
		"address of other family":   e(goodSeq, `"addr":"127.0.0.1"`, `"addr":"::1"`),
		"address with a zone":       e(goodSeq, `"addr":"::"`, `"addr":"fe80::1%lo"`),
		"port out of range":         e(goodSeq, `"addr":"127.0.0.1","port":20000`, `"addr":"127.0.0.1","port":65536`),
		"negative uid":              e(goodSeq, `"uid":1000`, `"uid":-1`),
		"uid over 32 bits":          e(goodSeq, `"uid":1000`, `"uid":4294967296`),
		"fractional port":           e(goodSeq, `"addr":"127.0.0.1","port":20000`, `"addr":"127.0.0.1","port":20000.5`),
		"bound_port out of range":   e(goodSeq, `"bound_port":20000`, `"bound_port":-1`),
	})
	requireMalformed(t, ReadBindCases, goodTW, map[string]string{
		"timewait without prelude": e(goodTW, `"prelude":{"listener":{"family":4,"v6only":null,"addr":"127.0.0.1","port":20001,"reuseaddr":false,"reuseport":false,"uid":0},"client_dst":"127.0.0.1","who_closed_first":"server"},`, ``),
		"bad prelude listener":     e(goodTW, `"addr":"127.0.0.1","port":20001`, `"addr":"::1","port":20001`),
		"bad client_dst":           e(goodTW, `"client_dst":"127.0.0.1"`, `"client_dst":"localhost"`),
		"bad who_closed_first":     e(goodTW, `"who_closed_first":"server"`, `"who_closed_first":"both"`),
		"unknown prelude field":    e(goodTW, `"who_closed_first":"server"`, `"who_closed_first":"server","when":1`),
	})
	requireMalformed(t, ReadBindCases, goodPort0, map[string]string{
		"port0 without port_range":  e(goodPort0, `"port_range":[32768,60999],`, ``),
		"port_range of one element": e(goodPort0, `[32768,60999]`, `[32768]`),
		"port_range upside down":    e(goodPort0, `[32768,60999]`, `[60999,32768]`),
		"port_range from 0":         e(goodPort0, `[32768,60999]`, `[0,60999]`),
	})
}

// The two op shapes encode as the recorder has always written them, and
// decode back to the same op.
func TestBindOpShapes(t *testing.T) {
	v6 := false
	for _, tc := range []struct {
		op   BindOp
		want string
	}{
		{BindOp{Action: ActionListen, Target: 0, Result: ResultOK},
			`{"action":"listen","target":0,"result":"ok"}`},
		{BindOp{Action: ActionListen, Target: 2, Result: "EADDRINUSE", Stage: StageListen},
			`{"action":"listen","target":2,"result":"EADDRINUSE","stage":"listen"}`},
		{BindOp{BindSock: BindSock{Family: 4, Addr: "0.0.0.0", Port: 10000, ReuseAddr: true, UID: 1000}, Action: ActionBind, Result: "EADDRINUSE", Stage: StageBind},
			`{"family":4,"v6only":null,"addr":"0.0.0.0","port":10000,"reuseaddr":true,"reuseport":false,"uid":1000,"action":"bind","result":"EADDRINUSE","stage":"bind"}`},
		{BindOp{BindSock: BindSock{Family: 6, V6Only: &v6, Addr: "::", Port: 10000, ReusePort: true}, Action: ActionBindConnect,
			ConnectAddr: "::ffff:127.0.0.1", ConnectPort: 9000, Result: ResultOK, BoundPort: 10000},
			`{"family":6,"v6only":false,"addr":"::","port":10000,"reuseaddr":false,"reuseport":true,"uid":0,"action":"bind+connect","connect_to":["::ffff:127.0.0.1",9000],"result":"ok","bound_port":10000}`},
	} {
		b, err := json.Marshal(tc.op)
		require.NoError(t, err)
		require.Equal(t, tc.want, string(b))
		var back BindOp
		require.NoError(t, json.Unmarshal(b, &back))
		require.Equal(t, tc.op, back)
	}
}

func TestBindOpResultAt(t *testing.T) {
	o := BindOp{Action: ActionBindListen, Result: "EADDRINUSE", Stage: StageListen}
	require.Equal(t, ResultOK, o.ResultAt(StageBind))
	require.Equal(t, "EADDRINUSE", o.ResultAt(StageListen))
	o = BindOp{Action: ActionBindListen, Result: ResultOK}
	require.Equal(t, ResultOK, o.ResultAt(StageBind))
	require.Equal(t, ResultOK, o.ResultAt(StageListen))
}

// goodUDP is a valid UDP case: a bind, then a bind+connect.
const goodUDP = `{"id":"u","proto":"udp","kind":"pair","port":20002,"ops":[` +
	`{"family":4,"v6only":null,"addr":"0.0.0.0","port":20002,"reuseaddr":true,"reuseport":false,"uid":0,"action":"bind","result":"ok","bound_port":20002},` +
	`{"family":4,"v6only":null,"addr":"127.0.0.1","port":20002,"reuseaddr":true,"reuseport":false,"uid":0,"action":"bind+connect","connect_to":["127.0.0.1",9000],"result":"ok","bound_port":20002}],"kernel":"k"}`

// UDP cases: bind and bind+connect only, no TIME_WAIT kind, a known proto.
func TestReadUDPBindCases(t *testing.T) {
	c, err := ParseBindLine([]byte(goodUDP))
	require.NoError(t, err)
	require.Equal(t, ProtoUDP, c.Proto)
	again, err := json.Marshal(c)
	require.NoError(t, err)
	require.JSONEq(t, goodUDP, string(again))
	disc := edit(t, goodUDP, `"result":"ok","bound_port":20002}]`, `"result":"ok","bound_port":20002,"disconnect":true,"after_disconnect":["0.0.0.0",20002]}]`)
	c, err = ParseBindLine([]byte(disc))
	require.NoError(t, err)
	require.Equal(t, BindOp{BindSock: c.Ops[1].BindSock, Action: ActionBindConnect, ConnectAddr: "127.0.0.1", ConnectPort: 9000,
		Result: ResultOK, BoundPort: 20002, Disconnect: true, AfterAddr: "0.0.0.0", AfterPort: 20002}, c.Ops[1])
	again, err = json.Marshal(c)
	require.NoError(t, err)
	require.JSONEq(t, disc, string(again))
	tcp, err := ParseBindLine([]byte(goodSeq))
	require.NoError(t, err)
	require.Empty(t, tcp.Proto, "a TCP case has no proto field")
	e := func(good, old, new string) string { return edit(t, good, old, new) }
	requireMalformed(t, ReadBindCases, goodUDP, map[string]string{
		"unknown proto":            e(goodUDP, `"proto":"udp"`, `"proto":"sctp"`),
		"udp listen":               e(goodUDP, `"action":"bind","result"`, `"action":"bind+listen","result"`),
		"udp timewait":             e(goodUDP, `"kind":"pair"`, `"kind":"timewait"`),
		"after without disconnect": e(goodUDP, `"result":"ok","bound_port":20002}]`, `"result":"ok","bound_port":20002,"after_disconnect":["0.0.0.0",20002]}]`),
		"disconnect without after": e(goodUDP, `"result":"ok","bound_port":20002}]`, `"result":"ok","bound_port":20002,"disconnect":true}]`),
		"after port out of range":  e(goodUDP, `"result":"ok","bound_port":20002}]`, `"result":"ok","bound_port":20002,"disconnect":true,"after_disconnect":["0.0.0.0",70000]}]`),
		"after of another family":  e(goodUDP, `"result":"ok","bound_port":20002}]`, `"result":"ok","bound_port":20002,"disconnect":true,"after_disconnect":["::",20002]}]`),
		"negative device":          e(goodUDP, `"uid":0,"action":"bind","result"`, `"uid":0,"device":-2,"action":"bind","result"`),
		"tcp disconnect":           e(goodSeq, `"result":"ok"`, `"result":"ok","disconnect":true,"after_disconnect":["::",20000]`),
		"udp late listen":          e(goodUDP, `{"family":4,"v6only":null,"addr":"127.0.0.1","port":20002,"reuseaddr":true,"reuseport":false,"uid":0,"action":"bind+connect","connect_to":["127.0.0.1",9000],"result":"ok","bound_port":20002}`, `{"action":"listen","target":0,"result":"ok"}`),
	})
}

// The committed UDP bind corpus reads back line for line; every case is
// UDP, and every kind and action a UDP case may have is there.
func TestReadUDPBindCorpusRoundTrip(t *testing.T) {
	cases := requireRoundTrip(t, filepath.Join(kernelDir, UDPBindFile), ReadBindCases)
	kinds, actions, results := map[string]int{}, map[string]int{}, map[string]int{}
	for _, c := range cases {
		require.Equal(t, ProtoUDP, c.Proto, c.ID)
		kinds[c.Kind]++
		for _, o := range c.Ops {
			actions[o.Action]++
			results[o.Result]++
			if o.Disconnect {
				actions["disconnect"]++
			}
			if o.Device != 0 {
				actions["device"]++
			}
		}
	}
	require.Positive(t, actions["disconnect"], "ops that disconnect")
	require.Positive(t, actions["device"], "ops bound to a device")
	for _, k := range []string{KindPair, KindSequence, KindPort0} {
		require.Positive(t, kinds[k], k)
	}
	for _, a := range []string{ActionBind, ActionBindConnect} {
		require.Positive(t, actions[a], a)
	}
	for _, r := range []string{ResultOK, "EADDRINUSE", "EINVAL"} {
		require.Positive(t, results[r], r)
	}
	require.Equal(t, []string{filepath.Join(kernelDir, UDPBindFile)}, UDPBindFiles(kernelDir)[:1])
}
