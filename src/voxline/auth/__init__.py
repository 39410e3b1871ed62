"""Who may connect: secret API keys with scopes, and browser tokens minted from them."""
