// Package rollout drives progressive delivery: it moves an endpoint's
// rollout from step to step once each step's bake has passed and its
// gates hold, and rolls it back when a gate fails.
//
// The decisions are one pure function, Evaluate, over an endpoint, the
// observations the gateways recorded for the step in force and the
// answers of the Prometheus gates. Driver runs Evaluate for every active
// rollout on one leader per database (a lease) and records what it
// decided through the store, one event per change. The package imports
// registry and nothing else of the project: the store it drives is an
// interface, and app wires it.
package rollout
