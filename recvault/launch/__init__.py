"""Child processes on purpose: recvault components and the local services they need."""
