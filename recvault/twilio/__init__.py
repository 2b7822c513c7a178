"""Twilio's REST API as recvault uses it: the client, where credentials may go, verified deletion."""
