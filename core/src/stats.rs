//! Named counters and gauges on atomics, iterated without allocation.
