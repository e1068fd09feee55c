package main

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
)

// scenario is what a simulation runs: the server's load and the phases,
// from an embedded file (scenarios/*.json) or the caller's.
type scenario struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Conns is the number of concurrent connections the server holds.
	Conns int `json:"conns"`
	// TimeWait is how many TIME_WAIT entries the churn phase keeps (its
	// simulated clock runs at the pace that holds them for 60 s).
	TimeWait int `json:"timewait"`
	// ChurnData and FloodData are the data segments to established
	// connections mixed into each round of churn and of the flood.
	ChurnData int `json:"churn_data"`
	FloodData int `json:"flood_data"`
	// FloodSources is how many spoofed (address, port) pairs the flood
	// comes from.
	FloodSources int `json:"flood_sources"`
	// ConnectPressure is the share of the ephemeral range in TIME_WAIT
	// during the connect phase.
	ConnectPressure float64 `json:"connect_pressure"`
	// Phases in order; Scaling the socket counts of the scaling picture;
	// Impls the implementations, socktable first.
	Phases  []string `json:"phases"`
	Scaling []int    `json:"scaling"`
	Impls   []string `json:"impls"`
}

//go:embed scenarios/*.json
var embedded embed.FS

// phaseNames are the phases a scenario may list, in the order they run
// best (each leaves the server as the next expects it).
var phaseNames = []string{"open", "steady", "churn", "synflood", "connect"}

var knownImpls = []string{"socktable", "linear", "rwmutex", "syncmap", "xsync"}

// loadScenario reads the embedded scenario name, or the file name if it
// is a path (contains a slash or ends in .json).
func loadScenario(name string) (*scenario, error) {
	var data []byte
	var err error
	if strings.ContainsRune(name, '/') || strings.HasSuffix(name, ".json") {
		data, err = os.ReadFile(name)
	} else if data, err = embedded.ReadFile("scenarios/" + name + ".json"); err != nil {
		return nil, fmt.Errorf("no scenario %q (embedded: %s)", name, strings.Join(embeddedScenarios(), ", "))
	}
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var sc scenario
	if err := dec.Decode(&sc); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", name, err)
	}
	return &sc, sc.validate()
}

func embeddedScenarios() []string {
	entries, _ := embedded.ReadDir("scenarios")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".json"))
	}
	return names
}

// ephemeralPorts is the size of ip_local_port_range.
const ephemeralPorts = int(ephemeralHigh) - int(ephemeralLow) + 1

func (sc *scenario) validate() error {
	switch {
	case sc.Conns < 1:
		return fmt.Errorf("scenario %s: conns must be at least 1", sc.Name)
	case sc.TimeWait < 0 || sc.ChurnData < 0 || sc.FloodData < 0:
		return fmt.Errorf("scenario %s: timewait, churn_data and flood_data must not be negative", sc.Name)
	case sc.FloodSources < 1:
		return fmt.Errorf("scenario %s: flood_sources must be at least 1", sc.Name)
	case sc.ConnectPressure < 0 || sc.ConnectPressure >= 1:
		return fmt.Errorf("scenario %s: connect_pressure must be in [0, 1)", sc.Name)
	case len(sc.Impls) == 0 || sc.Impls[0] != "socktable":
		return fmt.Errorf("scenario %s: impls must start with socktable", sc.Name)
	}
	for _, p := range sc.Phases {
		if !slices.Contains(phaseNames, p) {
			return fmt.Errorf("scenario %s: unknown phase %q (phases: %s)", sc.Name, p, strings.Join(phaseNames, ", "))
		}
	}
	if len(sc.Phases) > 0 && sc.Phases[0] != "open" {
		return fmt.Errorf("scenario %s: the first phase must be open (it makes the connections)", sc.Name)
	}
	for _, impl := range sc.Impls {
		if !slices.Contains(knownImpls, impl) {
			return fmt.Errorf("scenario %s: unknown implementation %q (%s)", sc.Name, impl, strings.Join(knownImpls, ", "))
		}
	}
	for _, n := range sc.Scaling {
		if n < 1 {
			return fmt.Errorf("scenario %s: scaling counts must be at least 1", sc.Name)
		}
	}
	return nil
}
