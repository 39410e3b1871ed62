"""Credentials: secret API keys with their scopes, and browser tokens minted from them."""
