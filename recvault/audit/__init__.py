"""The audit trail: hash-chained entries per recording, the accepted-callback ledger, seals, and
the history of one recording. Its checks (`recvault audit verify`) are `recvault.audit.verify`."""
