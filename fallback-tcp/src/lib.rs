//! Kernel-socket front ends on mio: TCP and plain UDP.
