package registry

import (
	"strconv"
	"strings"
)

// FlagDrain is everything the flag drain looks at for one endpoint. The
// store fills it inside the flag's transaction, so the decision and the
// write see the same data.
type FlagDrain struct {
	// Routes are the endpoint's routes as stored.
	Routes []Route
	// Version is the version just flagged, FlagReason its reason.
	Version    int64
	FlagReason string
	// Flagged holds the model's other flagged versions: their routes never
	// take the drained weight.
	Flagged map[int64]bool
	// IdleBlocked holds the versions whose routes at weight 0 may not take
	// traffic: on an endpoint that serves a stage, an idle route was never
	// judged against the stage with weight, so the store marks those that
	// neither hold the stage nor satisfy its policy.
	IdleBlocked map[int64]bool
}

// FlagDrainResult is what the drain does to one endpoint.
type FlagDrainResult struct {
	// Changed is false when no route to the flagged version had weight or
	// a header match: the endpoint stays as it is.
	Changed bool
	// Routes are the routes after the drain (a copy; the input is not
	// modified).
	Routes []Route
	// Message says what moved where, for the endpoint's status message
	// and its endpoint.flag_drain event.
	Message string
}

// DrainFlagged applies the emergency stop to one endpoint: every shadow
// route to the flagged version is removed, every other route to it loses
// its weight and its header match, and the weight goes to the
// heaviest route (the first of equals) to an unflagged version that may
// take traffic. With no such route every weight ends at 0 and the gateway
// answers 503 until someone sets the routes: a flagged version serving
// nothing is safer than one serving anything.
func DrainFlagged(d FlagDrain) FlagDrainResult {
	// A shadow route gets copies of real requests, so the emergency stop
	// removes shadows of the flagged version outright (a shadow has no
	// weight to lose and cannot be kept without its share).
	routes := make([]Route, 0, len(d.Routes))
	var unshadowed []string
	for _, r := range d.Routes {
		if r.Shadow && r.Version == d.Version {
			unshadowed = append(unshadowed, strconv.Quote(r.Name))
			continue
		}
		routes = append(routes, r)
	}
	moved := 0
	var lost, unmatched []string
	for i := range routes {
		r := &routes[i]
		if r.Version != d.Version {
			continue
		}
		if r.Weight > 0 {
			moved += r.Weight
			lost = append(lost, strconv.Quote(r.Name))
			r.Weight = 0
		}
		// A matched route serves its version whatever its weight, so the
		// emergency stop takes the match away too.
		if r.Match != nil {
			unmatched = append(unmatched, strconv.Quote(r.Name))
			r.Match = nil
		}
	}
	if moved == 0 && len(unmatched) == 0 && len(unshadowed) == 0 {
		return FlagDrainResult{Routes: routes}
	}
	msg := "version " + strconv.FormatInt(d.Version, 10) + " flagged"
	if d.FlagReason != "" {
		msg += " (" + d.FlagReason + ")"
	}
	msg += ": "
	if moved == 0 {
		var parts []string
		if len(unmatched) > 0 {
			parts = append(parts, lostMatch(unmatched))
		}
		if len(unshadowed) > 0 {
			parts = append(parts, removedShadows(unshadowed))
		}
		return FlagDrainResult{Changed: true, Routes: routes, Message: msg + strings.Join(parts, "; ")}
	}
	to := -1
	for i, r := range routes {
		if r.Version == d.Version || d.Flagged[r.Version] {
			continue
		}
		if to >= 0 && r.Weight <= routes[to].Weight {
			continue
		}
		if r.Weight == 0 && d.IdleBlocked[r.Version] {
			continue
		}
		to = i
	}
	what := "route " + lost[0]
	if len(lost) > 1 {
		what = "routes " + strings.Join(lost, ", ")
	}
	msg += what + " lost weight " + strconv.Itoa(moved)
	switch {
	case len(unmatched) == 1 && len(lost) == 1 && unmatched[0] == lost[0]:
		msg += " and its header match"
	case len(unmatched) > 0:
		msg += "; " + lostMatch(unmatched)
	}
	if to >= 0 {
		routes[to].Weight += moved
		msg += ", moved to route " + strconv.Quote(routes[to].Name)
	} else {
		msg += "; no route to an unflagged version is left, so the endpoint answers 503 until its routes are set"
	}
	if len(unshadowed) > 0 {
		msg += "; " + removedShadows(unshadowed)
	}
	return FlagDrainResult{Changed: true, Routes: routes, Message: msg}
}

func removedShadows(names []string) string {
	if len(names) == 1 {
		return "shadow route " + names[0] + " removed"
	}
	return "shadow routes " + strings.Join(names, ", ") + " removed"
}

func lostMatch(names []string) string {
	if len(names) == 1 {
		return "route " + names[0] + " lost its header match"
	}
	return "routes " + strings.Join(names, ", ") + " lost their header matches"
}
