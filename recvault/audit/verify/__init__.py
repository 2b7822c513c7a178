"""`recvault audit verify`: every check an auditor asks of the archive, and its report."""
