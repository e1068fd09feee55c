package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"os"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// captureHead returns the committed capture's pcap header and first n
// records, uncompressed.
func captureHead(f *testing.F, n int) []byte {
	gz, err := os.Open(committedCapture)
	if err != nil {
		f.Fatal(err)
	}
	defer gz.Close()
	zr, err := gzip.NewReader(gz)
	if err != nil {
		f.Fatal(err)
	}
	data, err := io.ReadAll(io.LimitReader(zr, 64<<10))
	if err != nil {
		f.Fatal(err)
	}
	end := 24
	for range n {
		end += 16 + int(binary.LittleEndian.Uint32(data[end+8:]))
	}
	return data[:end]
}

// FuzzReadCapture feeds the capture reader pcap and pcapng files, gzipped
// or not, damaged anywhere, and replays what it reads (with the listeners
// taken from the SYN-ACKs): nothing may panic, every frame read is a
// segment or a skip, and every segment replayed agrees, disagrees or had
// no reply to judge it by. go test runs its seeds; under -fuzz it runs at
// a few inputs a second (the instrumented reader and replay, for reasons
// not found yet), so CI's fuzz step leaves it out.
func FuzzReadCapture(f *testing.F) {
	head := captureHead(f, 40)
	f.Add(head)
	var gzipped bytes.Buffer
	zw := gzip.NewWriter(&gzipped)
	zw.Write(head)
	zw.Close()
	f.Add(gzipped.Bytes())
	// The same frames as pcapng.
	var ng bytes.Buffer
	w, err := pcapgo.NewNgWriter(&ng, layers.LinkTypeEthernet)
	if err != nil {
		f.Fatal(err)
	}
	for off := 24; off < len(head); {
		n := int(binary.LittleEndian.Uint32(head[off+8:]))
		frame := head[off+16 : off+16+n]
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(int64(off), 0), CaptureLength: n, Length: n}
		if err := w.WritePacket(ci, frame); err != nil {
			f.Fatal(err)
		}
		off += 16 + n
	}
	w.Flush()
	f.Add(ng.Bytes())
	f.Add([]byte{})
	f.Add(head[:24])
	f.Add(head[:100])
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decodeCapture(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		skipped := 0
		for _, n := range c.skipped {
			skipped += n
		}
		if len(c.packets)+skipped != c.frames {
			t.Fatalf("%d frames: %d segments and %d skipped", c.frames, len(c.packets), skipped)
		}
		r, err := newCheckedReplay(c, listenersFromSynAcks(c.packets))
		if err != nil {
			return // listeners the SYN-ACKs name that cannot all be bound
		}
		if judged := r.rep.Agreed + r.rep.Misdirected + r.rep.Skipped[skipNoOracle]; judged != r.rep.Segments {
			t.Fatalf("%d segments: %d agreed, %d misdirected, %d without a reply", r.rep.Segments, r.rep.Agreed,
				r.rep.Misdirected, r.rep.Skipped[skipNoOracle])
		}
	})
}
