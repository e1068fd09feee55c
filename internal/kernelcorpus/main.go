//go:build linux && !mips && !mipsle && !mips64 && !mips64le

// Command kernelcorpus records the real Linux kernel's answers to the
// questions socktable's tables must answer the same way: does a bind,
// listen or connect on a port succeed next to the sockets already there,
// which listener does a new connection reach, and how does a TIME_WAIT
// socket answer the segments that reach it. The answers go to
// testdata/kernel, where the replay tests hold the tables to them; where
// they and any written account of Linux disagree, the kernel is right.
//
// It is run by hand, as root, on Linux, and never by CI (it needs root and
// changes uids):
//
//	go run ./internal/kernelcorpus -out testdata/kernel [-seed 1] [-random 400]
//	go run ./internal/kernelcorpus -segments -out testdata/kernel
//	go run ./internal/kernelcorpus -udp -out testdata/kernel [-seed 1] [-random 400]
//
// The first writes bind.jsonl and lookup.jsonl; the second (-segments)
// writes only timewait-segments.jsonl, the third (-udp) only
// udp-bind.jsonl and udp-lookup.jsonl (the bind grid and the lookup
// scenarios on UDP sockets, see udp.go and udplookup.go), leaving the
// others untouched.
//
// It needs root (to make a network namespace, add addresses to lo and
// create sockets as uid 1000), util-linux unshare(1) and iproute2 ip(8).
// It re-executes itself as `unshare --net -- <itself> <args>`, with an
// environment marker holding the caller's namespace; inside, it checks
// that its namespace is a different one before it opens any socket, brings
// lo up and adds 2001:db8::1 and 2001:db8::2 to it (nodad). All sockets
// use loopback addresses only (with -segments, also 10.77.0.1 on a TUN
// device in the namespace, behind which there is only the generator
// itself; it needs /dev/net/tun), and the namespace dies with the
// process, so nothing is visible outside it. A run takes seconds. Every case uses
// ports of its own, counted up from 10000 and kept below the ephemeral
// range, so cases never meet each other's sockets or TIME_WAITs.
//
// Owners: sockets of uid 1000 are created (and bound, listened, connected)
// with euid 1000 and saved uid 0 (setresuid(-1, 1000, 0)); the euid goes
// back to 0 at once after.
//
// The three formats below are declared once, as Go types, in
// internal/corpus (BindCase, LookupCase and SegmentCase, one a line),
// which this command writes and the replay tests read.
//
// # bind.jsonl
//
// One case per line: {"id","kind","port","ops",["prelude"],["port_range"],
// "kernel"}. The ops run in order on port "port", each on a fresh socket,
// and every socket stays open until the case ends. A socket op is
// {"family","v6only","addr","port","reuseaddr","reuseport","uid","action",
// ["connect_to"],"result",["stage"],["bound_port"]}: v6only is null for
// family 4; action is bind, bind+listen or bind+connect (connect_to is
// [addr, port] of a helper listener the generator keeps on port 9000,
// 127.0.0.1 and v6only ::1, which is not an op); result is ok or the errno
// name; stage names the failing syscall (bind, listen, connect); bound_port
// is what getsockname reports after a successful bind. A late listen is
// {"action":"listen","target":i,"result",["stage"]} on op i's socket,
// with result SKIPPED_TARGET_NOT_BOUND when that bind had failed. A socket
// whose listen or connect failed stays open and bound.
//
// The address grid has 13 points: family 4 × {0.0.0.0, 127.0.0.1,
// 127.0.0.2}; family 6 with v6only false and true × {::, ::1, 2001:db8::2,
// ::ffff:127.0.0.1, ::ffff:0.0.0.0}. With the four SO_REUSEADDR ×
// SO_REUSEPORT settings that is 52 socket kinds, 8 of which (v6only with a
// v4-mapped address) can never bind. Owners are uid 0 or 1000.
//
//   - kind "pair" (10932 lines): every ordered pair of the 52 kinds. The
//     second socket always does bind+listen: as the last op its bind answer
//     is exactly the bind-only answer, and the listen answer comes free.
//     When both kinds can bind (44×44 pairs): uids 0,0 with the first
//     socket doing each of bind, bind+listen and bind+connect; when both set
//     SO_REUSEPORT (the owner rule), also uids 0,1000 and 1000,0 with the
//     first doing bind and bind+listen, 1000,1000 with bind+listen, and
//     0,1000 with bind+connect; otherwise one more line whose owners cycle
//     through 0,1000 / 1000,0 / 1000,1000 and whose first action cycles
//     through the three. When a kind can never bind: one line, uids 0,0
//     (first bind when it is the first, first bind+listen when the second).
//     A dual-stack :: doing bind+connect reaches ::1 and ::ffff:127.0.0.1
//     on alternate lines.
//   - kind "sequence": 320 fixed cases "seq-fixed-*" (bind A, bind B, then
//     listen both in either order; A,B in {127.0.0.1,127.0.0.1},
//     {0.0.0.0,127.0.0.1}, {127.0.0.1,0.0.0.0}, {dual-stack ::,0.0.0.0},
//     {dual-stack ::1, dual-stack ::} × all flags of both × uids 0,0 and
//     0,1000) for the listen-time re-check, and -random cases "seq-rand-*"
//     of 3 or 4 ops drawn with -seed from all 52 kinds, both owners, all
//     three actions and late listens on earlier bind or bind+connect ops.
//   - kind "timewait" (1024 lines, fewer if a TIME_WAIT failed to appear,
//     which the summary counts): a listener on P, a client connects to
//     prelude.client_dst:P and is accepted, who_closed_first closes first,
//     the other side closes, the listener closes; the TIME_WAIT is checked
//     in /proc/net/tcp{,6} (for "server" the accepted socket on P; for
//     "client" the client's, on an ephemeral port, with nothing left on P,
//     as a control). Listeners: 127.0.0.1 and 0.0.0.0 reached at 127.0.0.1,
//     dual-stack :: reached at ::1 and at 127.0.0.1; × listener flags ×
//     listener uid × who_closed_first. Then one bind+listen op on the
//     TIME_WAIT's own address and on the wildcard of the client's family
//     (dual-stack for IPv6) × all flags × uid 0 and 1000.
//   - kind "port0" (15 lines, port 0): binds to port 0, alone and two or
//     three to a case with the various flags. The kernel picks the port at
//     random: check the results, that bound_port lies within the line's
//     "port_range" (ip_local_port_range), and that it is never shared.
//
// # lookup.jsonl
//
// One case per line: {"id","listeners","client_family","dst_addr",
// "dst_port","connects","kernel"}. Listeners ({"family","v6only","addr",
// "port","reuseport","reuseaddr"}, all uid 0, non-blocking) are created
// and listen in order on dst_port; a case whose listeners cannot all bind
// and listen is skipped and named in the summary. Each connect binds a
// client of client_family to src_addr:src_port, connects to
// dst_addr:dst_port, and records the index of the listener whose accept
// returned it, or "ECONNREFUSED". Scenarios: each single listener kind
// against IPv4, IPv6 and v4-mapped clients; exact against wildcard in both
// creation orders (IPv4, IPv6, v6only, v4-mapped, AF_INET against
// dual-stack); AF_INET 0.0.0.0 against dual-stack, v6only and v4-mapped
// wildcards in both orders; reuseport groups of 2 to 4 on one address; and
// two groups on different addresses, families or v6only settings, in both
// orders and interleaved. Cases with a SO_REUSEPORT listener make 64
// connections (to show group membership and spread), others 4. Reuseport
// member choice hashes with a per-boot secret: compare membership and
// spread, never which member took which connection.
//
// # timewait-segments.jsonl
//
// How a TIME_WAIT or orphaned FIN_WAIT2 socket (a timewait mini socket)
// answers segments: tcp_timewait_state_process and what tcp_v4_rcv then
// sends. With -segments the generator creates a TUN device sttun0 in the
// namespace (IFF_TUN|IFF_NO_PI, IPv6 off on it), gives it 10.77.0.1/24 and
// plays the peer 10.77.0.2 itself, writing and reading raw IPv4 packets
// (checksums its own). Per case: a non-blocking listener on
// 10.77.0.1:P (P from 10000 up, the peer on P+10000); the peer's SYN (MSS
// 1460, window scale 7 unless "nows", timestamps unless "nots"); the
// kernel's SYN-ACK; the peer's ACK; accept(2); close(2) of the accepted
// socket, so the kernel closes first and sends its FIN; then the peer
// answers as "close" says and /proc/net/tcp must show the mini socket
// (timer 3) in "substate", or the case is skipped and named in the
// summary. The probes follow, each waited on for 200 ms; one that got a
// SYN-ACK is followed by a "cleanup" RST to the new request; the last is
// a "followup" FIN|ACK at the peer's FIN sequence number, which a live
// mini socket ACKs and anything else resets. tcp_rfc1337 is set per case
// (it is per namespace) and put back to 0 after. A run takes about 30 s.
//
// One case per line: {"id","substate","close","sysctls","listener",
// "local","remote","setup","probes","kernel"}. substate is TIME_WAIT or
// FIN_WAIT2; close is fin-ack (one FIN|ACK acknowledging the kernel's
// FIN: the full socket enters TIME_WAIT through tcp_fin), ack-fin (an
// ACK, which leaves a FIN_WAIT2 mini socket, then a FIN|ACK, which turns
// it into TIME_WAIT) or ack (the ACK only: FIN_WAIT2); sysctls holds
// net.ipv4.tcp_rfc1337, tcp_invalid_ratelimit (ms), tcp_fin_timeout,
// tcp_timestamps and tcp_window_scaling as they were; listener says
// whether the listener was still open at the probes; local and remote are
// the kernel's and the peer's addr:port. setup is every packet of the
// handshake and the close in order; probes are {"name","role","segment",
// "replies","entry"}: role is probe, cleanup or followup, segment the
// packet the peer sent, replies what the kernel sent on the four-tuple
// within 200 ms ([] for nothing), entry what /proc/net/tcp held for it
// after: TIME_WAIT or FIN_WAIT2 for a mini socket, "socket STATE" for a
// full or request socket, none for nothing. A packet is {"dir" (peer or
// kernel),"flags" ("SYN|ACK", tuple.Flags's spelling),"seq","ack",
// "window" (raw),"len" (payload bytes),["mss"],["wscale"],["ts"
// ([TSval, TSecr])],"clock_ms"}: clock_ms is CLOCK_MONOTONIC in ms, the
// clock of the kernel's TSvals (tcp_clock_ms, plus a per-connection
// offset): [t, t] when the peer wrote the packet, [lo, hi] for a kernel
// packet, from the write (or close) that caused it to its read. Probe
// names say the segment relative to the connection: "ack@rcv_nxt",
// "syn@rcv_nxt-100000/ts+1000" (TSval 1000 above the peer's last, which
// is the entry's ts_recent), "/ts-1000" (an old duplicate to PAWS),
// "/ts+0", "/nots" (no option on a timestamped connection), "+100B" (a
// payload). Cases: against TIME_WAIT, bare ACKs (at, before, far after
// rcv_nxt, PAWS-old, three in a row across the 500 ms rate limit), the
// FIN again (also with TSval 0 throughout, without window scaling, and
// reached through the FIN_WAIT2 mini socket), data, SYNs (after, at and
// before rcv_nxt × newer, equal, older and no timestamps; without a
// listener), a SYN|ACK, RSTs (at rcv_nxt, PAWS-old, either side of it,
// RST|ACK) with tcp_rfc1337 0 and 1; against FIN_WAIT2, the peer's FIN
// (in order, PAWS-old, beyond rcv_nxt), ACKs, data, SYNs and RSTs in and
// out of the window. The kernel's ISN for an accepted SYN is old snd_nxt +
// 65537; its TSvals are exact only to the clock_ms window, so compare
// TSval less the offset (derived from the SYN-ACK) against it.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/socktable/socktable/internal/corpus"
)

// nsEnv marks the re-executed child and carries the parent's network
// namespace (as /proc/self/ns/net reads), so the child can prove it is
// somewhere else.
const nsEnv = "SOCKTABLE_KERNELCORPUS_PARENT_NETNS"

// config is the command line.
type config struct {
	out      string
	seed     uint64
	random   int
	segments bool
	udp      bool
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("kernelcorpus: ")
	var cfg config
	flag.StringVar(&cfg.out, "out", "", "directory to write bind.jsonl and lookup.jsonl to (required)")
	flag.Uint64Var(&cfg.seed, "seed", 1, "seed of the random sequence cases")
	flag.IntVar(&cfg.random, "random", 400, "number of random sequence cases")
	flag.BoolVar(&cfg.segments, "segments", false, "record only timewait-segments.jsonl (through a TUN device), not bind.jsonl and lookup.jsonl")
	flag.BoolVar(&cfg.udp, "udp", false, "record only udp-bind.jsonl and udp-lookup.jsonl (UDP sockets), not bind.jsonl and lookup.jsonl")
	flag.Parse()
	if cfg.out == "" || flag.NArg() != 0 || cfg.random < 0 {
		flag.Usage()
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		log.Fatal("must run as root: it makes a network namespace and creates sockets as uid 1000")
	}
	parentNS, inside := os.LookupEnv(nsEnv)
	if !inside {
		os.Exit(reexec())
	}
	run(cfg, parentNS)
}

// reexec runs this program again under `unshare --net` and returns its
// exit status. A re-exec rather than unshare(2) in-process, because
// unshare(2) moves only the calling thread and a Go program has many.
func reexec() int {
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	ns, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		log.Fatal(err)
	}
	// Not /proc/self/exe: unshare would resolve that to itself.
	cmd := exec.Command("unshare", append([]string{"--net", "--", self}, os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), nsEnv+"="+ns)
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() > 0 {
			return ee.ExitCode()
		}
		log.Print(err)
		return 1
	}
	return 0
}

// run records the corpus; it runs inside the fresh namespace.
func run(cfg config, parentNS string) {
	ns, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		log.Fatal(err)
	}
	if ns == parentNS {
		log.Fatalf("still in the caller's network namespace %s: refusing to open sockets there", ns)
	}
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"-6", "addr", "add", "2001:db8::1/128", "dev", "lo", "nodad"},
		{"-6", "addr", "add", "2001:db8::2/128", "dev", "lo", "nodad"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			log.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	kernel := kernelRelease()
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		log.Fatal(err)
	}
	if cfg.segments {
		runSegments(cfg.out, kernel)
		return
	}
	lo, hi := portRange()
	r := newRunner(lo)
	defer r.close()
	if cfg.udp {
		runUDPBind(cfg, r, kernel, lo, hi)
		return
	}

	var sum summary
	writeJSONL(filepath.Join(cfg.out, corpus.BindFile), func(emit func(any)) {
		var cases []corpus.BindCase
		cases = append(cases, pairCases()...)
		cases = append(cases, fixedSequences()...)
		cases = append(cases, randomSequences(cfg.random, cfg.seed)...)
		cases = append(cases, timewaitCases()...)
		cases = append(cases, port0Cases()...)
		for i := range cases {
			c := &cases[i]
			c.Kernel = kernel
			switch c.Kind {
			case corpus.KindPort0:
				c.PortRange = []int{lo, hi}
				r.runOps(c.Ops, 0)
			case corpus.KindTimewait:
				c.Port = r.port()
				if !r.runTimewait(c, c.Port) {
					sum.twSkipped++
					continue
				}
			default:
				c.Port = r.port()
				r.runOps(c.Ops, c.Port)
			}
			sum.addBind(c)
			emit(c)
		}
	})
	writeJSONL(filepath.Join(cfg.out, corpus.LookupFile), func(emit func(any)) {
		cases := lookupCases()
		for i := range cases {
			c := &cases[i]
			c.Kernel = kernel
			if err := r.runLookup(c); err != nil {
				sum.lookupSkipped = append(sum.lookupSkipped, c.ID+": "+err.Error())
				continue
			}
			sum.addLookup(c)
			emit(c)
		}
	})
	sum.print(os.Stdout, kernel, lo, hi, r.nextPort)
}

// runUDPBind records udp-bind.jsonl and udp-lookup.jsonl.
func runUDPBind(cfg config, r *runner, kernel string, lo, hi int) {
	defer closeFD(makeDevice())
	results := map[string]int{}
	n := 0
	writeJSONL(filepath.Join(cfg.out, corpus.UDPBindFile), func(emit func(any)) {
		cases := udpBindCases(cfg.random, cfg.seed)
		for i := range cases {
			c := &cases[i]
			c.Kernel = kernel
			if c.Kind == corpus.KindPort0 {
				c.PortRange = []int{lo, hi}
				runUDPOps(c.Ops, 0)
			} else {
				c.Port = r.port()
				runUDPOps(c.Ops, c.Port)
			}
			for _, o := range c.Ops {
				results[o.Result]++
			}
			n++
			emit(c)
		}
	})
	lookups, skipped := map[string]int{}, []string{}
	writeJSONL(filepath.Join(cfg.out, corpus.UDPLookupFile), func(emit func(any)) {
		cases := udpLookupCases()
		for i := range cases {
			c := &cases[i]
			c.Kernel = kernel
			if err := r.runUDPLookup(c); err != nil {
				skipped = append(skipped, c.ID+": "+err.Error())
				continue
			}
			for _, cn := range c.Connects {
				if cn.Result.Err != "" {
					lookups[cn.Result.Err]++
				} else {
					lookups["received"]++
				}
			}
			emit(c)
		}
	})
	fmt.Printf("kernel %s, ports %d-%d (case ports up to %d)\nudp-bind.jsonl %d cases; op results: %v\n", kernel, lo, hi, r.nextPort, n, results)
	fmt.Printf("udp-lookup.jsonl datagrams: %v; %d cases skipped\n", lookups, len(skipped))
	for _, s := range skipped {
		fmt.Println("  skipped", s)
	}
}

// writeJSONL writes the values fill emits to path, one JSON object a line.
// It writes a temporary file and renames it, so that a run that dies
// half-way leaves the old corpus in place rather than half a new one.
func writeJSONL(path string, fill func(emit func(any))) {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		log.Fatal(err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	fill(func(v any) {
		if err := enc.Encode(v); err != nil {
			log.Fatalf("%s: %v", path, err)
		}
	})
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		log.Fatal(err)
	}
}

// kernelRelease returns what `uname -r` prints.
func kernelRelease() string {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		log.Fatal(err)
	}
	var b []byte
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

// portRange returns the namespace's net.ipv4.ip_local_port_range.
func portRange() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		log.Fatal(err)
	}
	fs := strings.Fields(string(b))
	if len(fs) != 2 {
		log.Fatalf("ip_local_port_range: %q", b)
	}
	lo, err1 := strconv.Atoi(fs[0])
	hi, err2 := strconv.Atoi(fs[1])
	if err1 != nil || err2 != nil {
		log.Fatalf("ip_local_port_range: %q", b)
	}
	return lo, hi
}

// summary counts what a run recorded, for the report printed at the end.
type summary struct {
	bindCases     map[string]int // by kind
	results       map[string]int // "kind result[@stage]" over all ops
	twSkipped     int
	lookupCases   int
	lookupResults map[string]int // "listener index" or error, over all connects
	lookupSkipped []string
}

// addBind counts a recorded bind case.
func (s *summary) addBind(c *corpus.BindCase) {
	if s.bindCases == nil {
		s.bindCases, s.results = map[string]int{}, map[string]int{}
	}
	s.bindCases[c.Kind]++
	for _, o := range c.Ops {
		k := c.Kind + " " + o.Result
		if o.Stage != "" {
			k += "@" + o.Stage
		}
		s.results[k]++
	}
}

// addLookup counts a recorded lookup case.
func (s *summary) addLookup(c *corpus.LookupCase) {
	if s.lookupResults == nil {
		s.lookupResults = map[string]int{}
	}
	s.lookupCases++
	for _, cn := range c.Connects {
		k := cn.Result.Err
		if k == "" {
			k = "listener " + strconv.Itoa(cn.Result.Listener)
		}
		s.lookupResults[k]++
	}
}

// print writes the summary.
func (s *summary) print(f io.Writer, kernel string, lo, hi, nextPort int) {
	fmt.Fprintf(f, "kernel %s, ip_local_port_range %d-%d, case ports %d-%d\n", kernel, lo, hi, firstPort, nextPort-1)
	for _, k := range slices.Sorted(maps.Keys(s.bindCases)) {
		fmt.Fprintf(f, "bind.jsonl %-9s %6d cases\n", k, s.bindCases[k])
	}
	for _, k := range slices.Sorted(maps.Keys(s.results)) {
		fmt.Fprintf(f, "  ops %-40s %6d\n", k, s.results[k])
	}
	fmt.Fprintf(f, "timewait cases skipped (no TIME_WAIT seen): %d\n", s.twSkipped)
	fmt.Fprintf(f, "lookup.jsonl %d cases\n", s.lookupCases)
	for _, k := range slices.Sorted(maps.Keys(s.lookupResults)) {
		fmt.Fprintf(f, "  connects %-20s %6d\n", k, s.lookupResults[k])
	}
	fmt.Fprintf(f, "lookup cases skipped (listeners could not all listen): %d\n", len(s.lookupSkipped))
	for _, l := range s.lookupSkipped {
		fmt.Fprintf(f, "  %s\n", l)
	}
}
