"""What one request may cost ingest before it is refused: sizes, counts and time.

Twilio's callbacks are small and quick: about ten headers, 15-20 parameters in a body of
about 1 KB sent at once, and Twilio gives up on the whole answer after 15 s. Each bound
below is generous for that and small enough that unsigned clients cannot hold memory,
CPU or connections for long. The body size (`RECVAULT_MAX_BODY_BYTES`) and the idle
timeout (`RECVAULT_IDLE_TIMEOUT_SECONDS`) are settings; these are not worth tuning.
"""

from __future__ import annotations

# Request line (method, path and query). A GET callback carries every parameter in its query,
# under 3 KB with EncryptionDetails; 8190 is aiohttp's and nginx's usual bound.
MAX_REQUEST_LINE_BYTES = 8190
# One header line. Twilio's longest is the 28-character X-Twilio-Signature; proxies add
# forwarding headers of a few hundred bytes at most.
MAX_HEADER_FIELD_BYTES = 4096
# Headers per request: Twilio sends about ten, a proxy in front adds a handful.
MAX_HEADERS = 64
# Parameters per callback: Twilio sends 15-20. Counted on the raw bytes, before parsing.
MAX_PARAMETERS = 256
# Seconds to receive a body once its headers are in. Twilio sends ~1 KB at once and waits 15 s
# for the whole answer, so a body still arriving after this is not Twilio's: answer 408.
BODY_READ_SECONDS = 5.0
# Seconds aiohttp keeps reading (and discarding) a body left unread after an early answer
# (403, 408, 413), so the client reads the answer instead of a reset; aiohttp's default is 10.
LINGER_SECONDS = 2.0
# Seconds a request in flight when ingest is told to stop (SIGTERM) gets to finish before its
# connection is closed: Twilio waits 15 s for an answer, so one still running after that is lost anyway.
SHUTDOWN_GRACE_SECONDS = 15.0
