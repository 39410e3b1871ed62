"""Telephony back ends driven by the phone transports: FreeSWITCH's Event Socket (a pure
protocol core and its asyncio client) and Twilio's webhook, TwiML and REST call control."""
