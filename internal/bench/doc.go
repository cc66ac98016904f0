// Package bench measures the SDK against the floor of its transports: it
// drives direct-method invocations through a hub's REST API to devices
// built on the SDK ("sdk"), written directly on the protocol library with
// none of the SDK's code in the path ("raw"), or, over MQTT, written by
// hand with no MQTT library and one goroutine ("floor"), and reports
// latency percentiles, call rates and, with the devices in a child process
// of their own, the CPU time they spend per call. Fleet mode connects many idle SDK clients in
// one process and reports the time, heap and RSS they cost. Soak mode runs
// SDK clients behind fault proxies for minutes while faults strike at
// random and the hub restarts, checks every answer against its call, and
// checks that every client recovers and that closing them leaves nothing
// behind.
//
// The command examples/bench is a thin front end to Run, Compare, Fleet
// and Soak.
package bench
