"""Turn a URL a business gives us into clean, normalised items.

No database and no Telegram here: bytes in, values out, plus one async fetcher.
"""
