"""What recvault is measured against: the no-op ceilings and the designs users would otherwise build."""
