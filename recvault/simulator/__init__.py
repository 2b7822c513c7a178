"""A Twilio stand-in for tests, the demo and benchmarks: REST API, media, signed callbacks.

    media        deterministic WAV/MP3 bytes, streamed in constant memory, and their SHA-256
    recordings   SimRecording, Faults and SimState (accounts, API keys, request log)
    resources    Twilio's JSON shapes: Recording resource, list pages, error bodies
    api          the Twilio routes behind HTTP Basic auth; create_sim_app(state)
    control      the /_sim/ control API used by tests and the demo
    server       SimServer: run it on a free port, in-loop or on a thread
    callbacks    CallbackSender: signed Recording Status Callbacks, retried like Twilio
    cli          `recvault simulate serve|send`
"""
