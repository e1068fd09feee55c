package syncookie

import (
	"time"

	"github.com/socktable/socktable/tuple"
)

type Jar struct{}

func NewJar() *Jar { return &Jar{} }
func (j *Jar) Cookie(t tuple.Tuple, peerISN uint32, mss uint16, now time.Duration) (uint32, uint16) {
	return peerISN ^ 0x5a5a, mss
}
func (j *Jar) Check(t tuple.Tuple, peerISN, cookie uint32, now time.Duration) (uint16, bool) {
	return 1460, cookie == peerISN^0x5a5a
}

type Options struct {
	WScale          uint8
	HasWScale, SACK bool
	ECN             bool
}

func EncodeTS(ts uint32, o Options) uint32                 { return ts }
func DecodeTS(tsecr uint32) (Options, bool)                { return Options{}, true }
func (j *Jar) ISN(t tuple.Tuple, now time.Duration) uint32 { return uint32(now >> 6) }
func (j *Jar) TSOffset(t tuple.Tuple) uint32               { return 7 }
