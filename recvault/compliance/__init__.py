"""The retention policy and the compliance actions on it: legal holds, erasure, purge, lifecycle."""
