"""Tables, engine and queries. Returns plain domain values; no Telegram, no HTTP."""
