//! AF_XDP kernel-bypass UDP front end (see issue 5).
